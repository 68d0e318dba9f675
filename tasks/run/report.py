"""What people look at: the champion, artifact texts, and the forecast report PNG.

Pure functions (no Prefect): ``sp500 report`` renders from the warehouse with them alone.
The flows publish them as artifacts through ``tasks.run.publish``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib as mpl
import pandas as pd

mpl.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

REPORT_YEARS = 15


def significance(pvalue: object) -> str:
    """The Diebold-Mariano verdict against naive, in words."""
    if pvalue is None or pd.isna(pvalue):
        return "no Diebold-Mariano test against naive (naive was not run, or too few months)"
    if float(pvalue) < 0.05:
        return f"beats naive significantly at 5 % (Diebold-Mariano p = {float(pvalue):.3f})"
    return f"beats naive, but not significantly at 5 % (Diebold-Mariano p = {float(pvalue):.2f})"


def pair_verdict(model: str, baseline: str, change: float, pvalue: object) -> str:
    """One sentence of due diligence about ``model`` against ``baseline``.

    E.g. ``conv1d_lstm vs lstm: 0.9 % lower RMSE, p = 0.41: the convolution does not earn
    its place``. ``change`` is RMSE(model) / RMSE(baseline) - 1.
    """
    direction = "lower" if change < 0 else "higher"
    known = pvalue is not None and not pd.isna(pvalue)
    shown = f"p = {float(pvalue):.2f}" if known else "no test"
    earned = known and float(pvalue) < 0.05 and change < 0
    if baseline in ("naive", "drift"):
        judgement = (
            f"{model} beats {baseline}" if earned else f"{model} does not beat {baseline} at 5 %"
        )
    else:
        what = "the convolution" if (model, baseline) == ("conv1d_lstm", "lstm") else "the variant"
        judgement = f"{what} {'earns' if earned else 'does not earn'} its place"
    return (
        f"{model} vs {baseline}: {abs(change) * 100:.1f} % {direction} RMSE, {shown}: {judgement}"
    )


def due_diligence(rmse: dict[str, float], comparisons: pd.DataFrame) -> list[str]:
    """One verdict per tested pair (see ``pair_verdict``), in the order of ``comparisons``."""
    return [
        pair_verdict(c.model, c.baseline, rmse[c.model] / rmse[c.baseline] - 1.0, c.dm_pvalue)
        for c in comparisons.itertuples(index=False)
        if c.model in rmse and c.baseline in rmse
    ]


def choose_champion(leaderboard: Sequence[dict[str, object]]) -> tuple[str, str]:
    """Pick the lowest-RMSE model among those with theil_u2 < 1; else ``naive``.

    Returns:
        The champion's name and one sentence saying why, with its test against naive.
    """
    better = [r for r in leaderboard if float(r["theil_u2"]) < 1.0 and r["model"] != "naive"]
    if not better:
        return "naive", (
            "No model beat the naive last-value forecast on the test split "
            "(every theil_u2 ≥ 1), so naive stays champion."
        )
    best = min(better, key=lambda r: float(r["rmse"]))
    return str(best["model"]), (
        f"{best['model']} has the lowest test RMSE ({float(best['rmse']):.1f}) among models "
        f"that beat naive (theil_u2 {float(best['theil_u2']):.3f} < 1); it "
        f"{significance(best.get('dm_pvalue'))}."
    )


def _rounded(value: object, digits: int) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), digits)


def leaderboard_table(leaderboard: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """Rows of the ``sp500-leaderboard`` table artifact: model, rmse, mae, mase, theil_u2, rank."""
    return [
        {
            "model": r["model"],
            "rmse": round(float(r["rmse"]), 2),
            "seeds": int(r.get("seeds", 0) or 0),
            "rmse_std": _rounded(r.get("rmse_std"), 2),
            "rmse_min": _rounded(r.get("rmse_min"), 2),
            "rmse_max": _rounded(r.get("rmse_max"), 2),
            "dm_pvalue": _rounded(r.get("dm_pvalue"), 4),
            "mae": round(float(r["mae"]), 2),
            "mase": round(float(r["mase"]), 3),
            "theil_u2": round(float(r["theil_u2"]), 4),
            "rank": int(r["rank"]),
        }
        for r in leaderboard
    ]


def backtest_table(
    metrics: pd.DataFrame, comparisons: pd.DataFrame, predictions: pd.DataFrame
) -> list[dict[str, object]]:
    """Rows of the ``sp500-backtest`` table, best RMSE first (rmse, mae, theil_u2, dm_pvalue).

    ``dm_pvalue`` is the Diebold-Mariano p-value against naive (None for naive itself);
    ``coverage_80`` and ``coverage_95`` the share of months inside each origin's bands,
    among the months that have one (the bands' warm-up has none).
    """
    naive = comparisons[comparisons["baseline"] == "naive"] if len(comparisons) else comparisons
    pvalues = naive.set_index("model")["dm_pvalue"].to_dict() if len(naive) else {}
    seconds = predictions.groupby("model")["train_seconds"].sum().to_dict()
    predictions = predictions.dropna(subset=["lower_95"])  # months still in the warm-up
    actual = predictions["actual"]
    inside = predictions.assign(
        inside_80=actual.between(predictions["lower_80"], predictions["upper_80"]),
        inside_95=actual.between(predictions["lower_95"], predictions["upper_95"]),
    )
    coverage = inside.groupby("model")[["inside_80", "inside_95"]].mean().to_dict("index")
    rows = []
    for m in metrics.sort_values("rmse").itertuples(index=False):
        pvalue = pvalues.get(m.model)
        rows.append(
            {
                "model": m.model,
                "rmse": round(float(m.rmse), 2),
                "mae": round(float(m.mae), 2),
                "theil_u2": round(float(m.theil_u2), 4),
                "dm_pvalue": None if pvalue is None or pd.isna(pvalue) else round(pvalue, 4),
                **{
                    f"coverage_{pct}": round(float(coverage[m.model][f"inside_{pct}"]), 3)
                    if m.model in coverage
                    else None  # every month still in the warm-up
                    for pct in (80, 95)
                },
                "seconds": round(float(seconds.get(m.model, 0.0)), 1),
            }
        )
    return rows


def largest_revision(revisions: pd.DataFrame) -> pd.Series:
    """The ``revisions`` row whose close changed most, either way."""
    return revisions.loc[revisions["relative_change"].abs().idxmax()]


def revision_summary(revisions: pd.DataFrame | None) -> str | None:
    """One line: "3 past months changed since run …, largest 2026-04 +1.0 %"; None if none."""
    if revisions is None or revisions.empty:
        return None
    largest = largest_revision(revisions)
    count = len(revisions)
    months = "past month" if count == 1 else "past months"
    return (
        f"{count} {months} changed since run {largest['since_run_id']}, largest"
        f" {pd.Timestamp(largest['month']):%Y-%m} {largest['relative_change'] * 100:+.1f} %"
    )


def source_note(source: str, passed_over: str | None) -> str:
    """One line: where the data came from, and the sources passed over first, with why."""
    if not passed_over:
        return f"Data from {source}."
    skipped = "; ".join(passed_over.splitlines())
    return f"Data from {source}, after passing over {skipped}."


def data_notes(source: str, passed_over: str | None, revisions: pd.DataFrame | None) -> list[str]:
    """The lines the artifact and ``sp500 report`` print about the run's data."""
    revised = revision_summary(revisions)
    return [source_note(source, passed_over), *([revised] if revised else [])]


def month_span(months: Iterable[object]) -> str:
    """``2026-06 … 2027-05`` from the first to the last of ``months``; one month alone."""
    stamps = [pd.Timestamp(m) for m in months]
    first, last = min(stamps), max(stamps)
    return f"{first:%Y-%m}" if first == last else f"{first:%Y-%m} … {last:%Y-%m}"


def champion_path(forecasts: pd.DataFrame, champion: str) -> pd.DataFrame:
    """The champion's forecasts, one row per horizon in order."""
    return forecasts[forecasts["model"] == champion].sort_values("horizon")


HORIZON_CHAMPION_COLUMNS = [
    "horizon",
    "model",
    "target_month",
    "point",
    "lower_80",
    "upper_80",
    "lower_95",
    "upper_95",
    "rmse",
    "dm_pvalue",
]


def horizon_champions(forecasts: pd.DataFrame, champions: pd.DataFrame) -> pd.DataFrame:
    """Each horizon's rolling champion with its forecast for that month and its bands.

    ``champions`` holds ``horizon, model, rmse, dm_pvalue`` (the rolling evaluation's);
    empty for a run made before it.
    """
    if champions.empty:
        return pd.DataFrame(columns=HORIZON_CHAMPION_COLUMNS)
    merged = champions.merge(forecasts, on=["model", "horizon"], how="inner")
    return merged.sort_values("horizon")[HORIZON_CHAMPION_COLUMNS].reset_index(drop=True)


def drawn_path_note(champion: str, table: pd.DataFrame) -> str:
    """Which path the report draws, and where the per-horizon champions differ from it."""
    others = sorted(set(table["model"]) - {champion})
    note = f"The path drawn is {champion}'s, the champion on one-month test RMSE."
    if others:
        note += f" Other horizons' rolling champions: {', '.join(others)} (dots)."
    return note


def forecast_markdown(
    forecasts: pd.DataFrame,
    champion: str,
    reason: str,
    report: Path | None,
    verdicts: Sequence[str] = (),
    champions: pd.DataFrame | None = None,
    notes: Sequence[str] = (),
) -> str:
    """Markdown of the forecasts: every model's next month, the champion's whole path.

    With the rolling evaluation's ``champions``, also each horizon's champion and its band;
    ``notes`` (where the data came from, what was revised) go under the champion.
    """
    path = champion_path(forecasts, champion)
    first = path.iloc[0]
    lines = [
        f"# S&P 500 forecast for {month_span(forecasts['target_month'])}",
        "",
        f"**Champion: `{champion}`: {first['point']:,.1f} for "
        f"{pd.Timestamp(first['target_month']):%Y-%m}** "
        f"(80 % {first['lower_80']:,.1f} … {first['upper_80']:,.1f}; "
        f"95 % {first['lower_95']:,.1f} … {first['upper_95']:,.1f})",
        "",
        reason,
        *[line for note in notes for line in ("", note)],
        "",
        "| model | point | 80 % interval | 95 % interval |",
        "|---|---:|---:|---:|",
    ]
    for f in forecasts[forecasts["horizon"] == 1].itertuples(index=False):
        lines.append(
            f"| {f.model} | {f.point:,.1f} | {f.lower_80:,.1f} … {f.upper_80:,.1f} "
            f"| {f.lower_95:,.1f} … {f.upper_95:,.1f} |"
        )
    if len(path) > 1:
        lines += [
            "",
            f"**`{champion}`, {len(path)} months ahead** (recursive: each month's forecast is fed "
            "back; bands from the rolling evaluation's earlier errors)",
            "",
            "| month | h | point | 80 % interval | 95 % interval |",
            "|---|---:|---:|---:|---:|",
        ]
        for f in path.itertuples(index=False):
            lines.append(
                f"| {pd.Timestamp(f.target_month):%Y-%m} | {f.horizon} | {f.point:,.1f} "
                f"| {f.lower_80:,.1f} … {f.upper_80:,.1f} | {f.lower_95:,.1f} … {f.upper_95:,.1f} |"
            )
    table = horizon_champions(forecasts, champions if champions is not None else pd.DataFrame())
    if len(table):
        lines += [
            "",
            "**Champion per horizon** (lowest rolling RMSE among models that beat naive at"
            " that horizon; bands from earlier errors only; p: Diebold-Mariano against naive):",
            "",
            "| h | month | model | point | 80 % interval | 95 % interval | rolling RMSE | p |",
            "|---:|---|---|---:|---:|---:|---:|---:|",
        ]
        for f in table.itertuples(index=False):
            pvalue = "-" if pd.isna(f.dm_pvalue) else f"{f.dm_pvalue:.2f}"
            lines.append(
                f"| {f.horizon} | {pd.Timestamp(f.target_month):%Y-%m} | {f.model} "
                f"| {f.point:,.1f} | {f.lower_80:,.1f} … {f.upper_80:,.1f} "
                f"| {f.lower_95:,.1f} … {f.upper_95:,.1f} | {f.rmse:,.1f} | {pvalue} |"
            )
        lines += ["", drawn_path_note(champion, table)]
    if verdicts:
        lines += ["", "**Due diligence** (Diebold-Mariano tests over the test months):", ""]
        lines += [f"- {v}" for v in verdicts]
    if report is not None:
        lines += ["", f"Report: [{report.name}]({report.resolve().as_uri()})"]
    return "\n".join(lines)


def validation_markdown(failures: pd.DataFrame, message: str) -> str:
    """Markdown of a validation failure: each failing check with up to five examples."""
    lines = [
        "# Validation failed",
        "",
        message,
        "",
        "| check | column | value | row |",
        "|---|---|---|---:|",
    ]
    for _, group in failures.groupby("check_name", sort=False):
        for f in group.head(5).itertuples(index=False):
            row = "" if pd.isna(f.row_index) else int(f.row_index)
            value = str(f.failure_case).replace("|", "\\|")
            lines.append(f"| {f.check_name} | {f.column_name or ''} | {value} | {row} |")
    return "\n".join(lines)


def render_report(
    prices: pd.DataFrame,
    predictions: pd.DataFrame,
    forecasts: pd.DataFrame,
    champion: str,
    path: Path,
    champions: pd.DataFrame | None = None,
) -> Path:
    """Draw 15 years of closes, each model's test predictions, and the champion's forecast fan.

    With the rolling evaluation's ``champions``, each horizon's champion's point is a dot.

    ``prices`` has month/close, ``predictions`` model/month/predicted, ``forecasts``
    model/target_month/horizon/point and the 80/95 % bounds. The champion's path is drawn
    from the last close with its 80 % and 95 % bands shaded; the other models' paths are
    thin grey lines.
    """
    start = pd.Timestamp(prices["month"].max()) - pd.DateOffset(years=REPORT_YEARS)
    recent = prices[prices["month"] >= start]
    fig, ax = plt.subplots(figsize=(12, 6.5), dpi=110)
    ax.plot(recent["month"], recent["close"], color="black", lw=1.8, label="actual", zorder=5)
    for model, group in predictions.groupby("model", sort=False):
        shown = group[group["month"] >= start]
        width = 1.6 if model == champion else 0.9
        ax.plot(shown["month"], shown["predicted"], lw=width, alpha=0.8, label=f"{model} (test)")
    anchor = prices.iloc[-1]  # every path starts from the last close
    months = [pd.Timestamp(anchor["month"])]
    others = forecasts[forecasts["model"] != champion].sort_values(["model", "horizon"])
    for k, (_, group) in enumerate(others.groupby("model", sort=False)):
        ax.plot(
            months + list(pd.to_datetime(group["target_month"])),
            [anchor["close"], *group["point"]],
            color="gray",
            lw=0.8,
            marker="_" if len(group) == 1 else None,
            alpha=0.7,
            label="other models' forecasts" if k == 0 else None,
        )
    best = champion_path(forecasts, champion)
    x = months + list(pd.to_datetime(best["target_month"]))
    for level, alpha in ((95, 0.2), (80, 0.35)):
        ax.fill_between(
            x,
            [anchor["close"], *best[f"lower_{level}"]],
            [anchor["close"], *best[f"upper_{level}"]],
            color="tab:blue",
            alpha=alpha,
            lw=0,
            label=f"{level} % interval",
        )
    last = best.iloc[-1]
    span = month_span(best["target_month"])
    ax.plot(
        x,
        [anchor["close"], *best["point"]],
        color="tab:red",
        marker="o" if len(best) == 1 else None,
        ms=4,
        lw=1.6,
        zorder=7,
        label=(
            f"{champion} forecast {span}: "
            f"{last['point']:,.0f} by {pd.Timestamp(last['target_month']):%Y-%m}"
        ),
    )
    table = horizon_champions(forecasts, champions if champions is not None else pd.DataFrame())
    if len(table):
        ax.scatter(
            pd.to_datetime(table["target_month"]),
            table["point"],
            s=14,
            color="tab:green",
            zorder=8,
            label="each horizon's rolling champion",
        )
    ax.set_title(
        f"S&P 500 monthly average close: test predictions and the {span} forecast"
        f" (path: {champion})"
    )
    ax.set_ylabel("index points")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncols=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
