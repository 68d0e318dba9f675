"""What people look at: the champion, artifact texts, and the forecast report PNG.

Pure functions (no Prefect): ``sp500 report`` renders from the warehouse with them alone.
The flows publish them as artifacts through ``tasks.run.publish``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import pandas as pd

mpl.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

REPORT_YEARS = 15


def significance(pvalue: Any) -> str:
    """The Diebold-Mariano verdict against naive, in words."""
    if pvalue is None or pd.isna(pvalue):
        return "no Diebold-Mariano test against naive (naive was not run, or too few months)"
    if float(pvalue) < 0.05:
        return f"beats naive significantly at 5 % (Diebold-Mariano p = {float(pvalue):.3f})"
    return f"beats naive, but not significantly at 5 % (Diebold-Mariano p = {float(pvalue):.2f})"


def pair_verdict(model: str, baseline: str, change: float, pvalue: Any) -> str:
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


def _known(value: Any) -> bool:
    return value is not None and not pd.isna(value)


def champion_reason(row: pd.Series | dict[str, Any]) -> str:
    """One sentence: why a horizon's champion is the champion (``rolling_champions`` row)."""
    model, horizon, rmse = row["model"], int(row["horizon"]), float(row["rmse"])
    best = row.get("best_model")
    pvalue_naive = row.get("dm_pvalue")
    if model == "naive":
        naive = ""
    elif _known(pvalue_naive):
        naive = f"; it {significance(pvalue_naive)}"
    else:
        naive = "; it has no Diebold-Mariano test against naive"
    if not _known(best):  # a run made before the lesson's rule
        return f"{model} had the lowest rolling RMSE at h = {horizon} ({rmse:.1f}){naive}."
    kept = str(row.get("kept") or model).split(",")
    if model == best:
        return (
            f"At h = {horizon}, {model} has the lowest rolling RMSE ({rmse:.1f}) and no cheaper"
            f" model comes within reach of it (one-sided Diebold-Mariano, 10 %){naive}."
        )
    pvalue = row.get("dm_pvalue_vs_best")
    shown = "no test" if pvalue is None or not _known(pvalue) else f"p = {float(pvalue):.2f}"
    return (
        f"At h = {horizon}, {model} (rolling RMSE {rmse:.1f}) is the cheapest of the models not"
        f" significantly worse than the best, {best} (one-sided Diebold-Mariano, {shown});"
        f" kept: {', '.join(kept)}{naive}."
    )


def headline_champion(champions: pd.DataFrame) -> str | None:
    """The champion of the first horizon (what one word names as "the champion")."""
    if champions.empty:
        return None
    return str(champions.sort_values("horizon").iloc[0]["model"])


def _rounded(value: Any, digits: int) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), digits)


def leaderboard_table(leaderboard: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
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
) -> list[dict[str, Any]]:
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
    "best_model",
    "dm_pvalue_vs_best",
]


def horizon_champions(forecasts: pd.DataFrame, champions: pd.DataFrame) -> pd.DataFrame:
    """The drawn path: each horizon's champion with its forecast for that month and its bands.

    ``champions`` holds ``rolling_champions`` rows; empty for a run made before the rolling
    evaluation (and so is the path).
    """
    if champions.empty:
        return pd.DataFrame(columns=HORIZON_CHAMPION_COLUMNS)
    chosen = champions.copy()
    for column in ("best_model", "dm_pvalue_vs_best"):
        if column not in chosen:
            chosen[column] = None
    merged = chosen.merge(forecasts, on=["model", "horizon"], how="inner")
    return merged.sort_values("horizon")[HORIZON_CHAMPION_COLUMNS].reset_index(drop=True)


def path_models(path: pd.DataFrame) -> str:
    """``drift`` or ``drift (h = 1-3), mean (h = 4-12)``: whose forecasts the path is."""
    runs: list[tuple[str, int, int]] = []
    for row in path.itertuples(index=False):
        if runs and runs[-1][0] == row.model and runs[-1][2] == row.horizon - 1:
            runs[-1] = (runs[-1][0], runs[-1][1], int(row.horizon))
        else:
            runs.append((str(row.model), int(row.horizon), int(row.horizon)))
    if len({r[0] for r in runs}) == 1:
        return runs[0][0] if runs else ""
    return ", ".join(f"{m} (h = {a})" if a == b else f"{m} (h = {a}-{b})" for m, a, b in runs)


DECADE_HORIZONS = (1, 3, 6, 12)


def coverage_by_decade(history: pd.DataFrame) -> pd.DataFrame:
    """Coverage of the drawn path's rolling bands per decade of the target month.

    ``history`` holds each horizon's champion's rolling forecasts with bands (what
    ``read_run_report`` reads as ``champion_history``). One row per decade; columns
    ``h<h> 80`` / ``h<h> 95`` (share of banded months inside) and ``n`` (months at h = 1).
    """
    banded = history.dropna(subset=["lower_95"])
    banded = banded[banded["horizon"].isin(DECADE_HORIZONS)]
    if banded.empty:
        return pd.DataFrame(columns=["decade", "n"])
    actual = banded["actual"]
    frame = banded.assign(
        decade=(pd.DatetimeIndex(banded["target_month"]).year // 10 * 10).astype(str) + "s",
        inside_80=actual.between(banded["lower_80"], banded["upper_80"]),
        inside_95=actual.between(banded["lower_95"], banded["upper_95"]),
    )
    table = frame.pivot_table(
        index="decade", columns="horizon", values=["inside_80", "inside_95"], aggfunc="mean"
    )
    out = pd.DataFrame({"decade": table.index})
    first = frame[frame["horizon"] == frame["horizon"].min()]
    out["n"] = first.groupby("decade").size().reindex(table.index).fillna(0).astype(int).values
    for h in sorted(frame["horizon"].unique()):
        for pct in (80, 95):
            out[f"h{h} {pct}"] = table[(f"inside_{pct}", h)].round(3).values
    return out


def _interval(row: object, pct: int) -> str:
    low, high = getattr(row, f"lower_{pct}"), getattr(row, f"upper_{pct}")
    return f"{low:,.1f} … {high:,.1f}"


def forecast_markdown(
    forecasts: pd.DataFrame,
    champions: pd.DataFrame,
    report: Path | None,
    verdicts: Sequence[str] = (),
    notes: Sequence[str] = (),
    decades: pd.DataFrame | None = None,
) -> str:
    """Markdown of the forecasts: the champion, every model's next month, the drawn path.

    ``champions`` are the run's verdicts per horizon (``rolling_champions``); the drawn path
    is each horizon's champion. ``notes`` (where the data came from, what was revised) go
    under the champion; ``verdicts`` are the lesson's test-split due diligence; ``decades``
    the drawn path's coverage per decade (``coverage_by_decade``).
    """
    path = horizon_champions(forecasts, champions)
    lines = [f"# S&P 500 forecast for {month_span(forecasts['target_month'])}", ""]
    if len(path):
        first = path.iloc[0]
        lines += [
            f"**Champion at h = {int(first['horizon'])}: `{first['model']}`:"
            f" {first['point']:,.1f} for {pd.Timestamp(first['target_month']):%Y-%m}** "
            f"(80 % {first['lower_80']:,.1f} … {first['upper_80']:,.1f}; "
            f"95 % {first['lower_95']:,.1f} … {first['upper_95']:,.1f})",
            "",
            champion_reason(champions.sort_values("horizon").iloc[0]),
        ]
    else:
        lines.append("No verdict per horizon: this run was made before the rolling evaluation.")
    lines += [line for note in notes for line in ("", note)]
    lines += [
        "",
        "| model | point | 80 % interval | 95 % interval |",
        "|---|---:|---:|---:|",
    ]
    for f in forecasts[forecasts["horizon"] == 1].itertuples(index=False):
        lines.append(f"| {f.model} | {f.point:,.1f} | {_interval(f, 80)} | {_interval(f, 95)} |")
    if len(path) > 1:
        lines += [
            "",
            f"**The path: each horizon's champion, {len(path)} months ahead** ({path_models(path)};"
            " recursive forecasts, bands from earlier errors only). The champion is the model"
            " with the fewest parameters among those not significantly worse than the best"
            " (lowest rolling RMSE) at that horizon (one-sided Diebold-Mariano, 10 %).",
            "",
            "| h | month | model | point | 80 % interval | 95 % interval | rolling RMSE | best"
            " | p vs best |",
            "|---:|---|---|---:|---:|---:|---:|---|---:|",
        ]
        for f in path.itertuples(index=False):
            pvalue = "-" if not _known(f.dm_pvalue_vs_best) else f"{f.dm_pvalue_vs_best:.2f}"
            best = f.best_model if _known(f.best_model) else "-"
            lines.append(
                f"| {f.horizon} | {pd.Timestamp(f.target_month):%Y-%m} | {f.model} "
                f"| {f.point:,.1f} | {_interval(f, 80)} | {_interval(f, 95)} | {f.rmse:,.1f}"
                f" | {best} | {pvalue} |"
            )
    if decades is not None and len(decades):
        columns = list(decades.columns)
        lines += [
            "",
            "**Coverage of the path's bands per decade** (share of actuals inside; hN 80 is"
            " the 80 % band at h = N):",
            "",
            "| " + " | ".join(columns) + " |",
            "|" + "|".join("---" if c == "decade" else "---:" for c in columns) + "|",
        ]
        for row in decades.itertuples(index=False):
            lines.append("| " + " | ".join(str(v) for v in row) + " |")
    if verdicts:
        lines += [
            "",
            "**The lesson's table: due diligence** (Diebold-Mariano tests over the 181-month"
            " test split; no champion of its own):",
            "",
        ]
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
    champions: pd.DataFrame,
    path: Path,
) -> Path:
    """Draw 15 years of closes, each model's test predictions, and the forecast fan.

    ``prices`` has month/close, ``predictions`` model/month/predicted, ``forecasts``
    model/target_month/horizon/point and the 80/95 % bounds. The fan is the drawn path
    (each horizon's champion, ``champions``) from the last close with its 80 % and 95 %
    bands shaded; the other models' paths are thin grey lines.
    """
    start = pd.Timestamp(prices["month"].max()) - pd.DateOffset(years=REPORT_YEARS)
    recent = prices[prices["month"] >= start]
    drawn = horizon_champions(forecasts, champions)
    headline = headline_champion(champions)
    fig, ax = plt.subplots(figsize=(12, 6.5), dpi=110)
    ax.plot(recent["month"], recent["close"], color="black", lw=1.8, label="actual", zorder=5)
    for model, group in predictions.groupby("model", sort=False):
        shown = group[group["month"] >= start]
        width = 1.6 if model == headline else 0.9
        ax.plot(shown["month"], shown["predicted"], lw=width, alpha=0.8, label=f"{model} (test)")
    anchor = prices.iloc[-1]  # every path starts from the last close
    months = [pd.Timestamp(anchor["month"])]
    others = forecasts[~forecasts["model"].isin(set(drawn["model"]))]
    for k, (_, group) in enumerate(others.sort_values(["model", "horizon"]).groupby("model")):
        ax.plot(
            months + list(pd.to_datetime(group["target_month"])),
            [anchor["close"], *group["point"]],
            color="gray",
            lw=0.8,
            marker="_" if len(group) == 1 else None,
            alpha=0.7,
            label="other models' forecasts" if k == 0 else None,
        )
    span = month_span(forecasts["target_month"])
    if len(drawn):
        x = months + list(pd.to_datetime(drawn["target_month"]))
        for level, alpha in ((95, 0.2), (80, 0.35)):
            ax.fill_between(
                x,
                [anchor["close"], *drawn[f"lower_{level}"]],
                [anchor["close"], *drawn[f"upper_{level}"]],
                color="tab:blue",
                alpha=alpha,
                lw=0,
                label=f"{level} % interval",
            )
        last = drawn.iloc[-1]
        ax.plot(
            x,
            [anchor["close"], *drawn["point"]],
            color="tab:red",
            marker="o" if len(drawn) == 1 else None,
            ms=4,
            lw=1.6,
            zorder=7,
            label=(
                f"forecast {span}: {last['point']:,.0f} by"
                f" {pd.Timestamp(last['target_month']):%Y-%m}"
            ),
        )
    ax.set_title(
        f"S&P 500 monthly average close: test predictions and the {span} forecast"
        f" (path: {path_models(drawn) or 'none'})"
    )
    ax.set_ylabel("index points")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncols=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


HISTORY_HORIZONS = (1, 12)


def render_history(history: pd.DataFrame, path: Path) -> Path | None:
    """Draw the h = 1 and h = 12 champions' rolling bands against the actuals, and coverage.

    One panel per horizon (95 % and 80 % bands made from earlier errors only, actuals, the
    months outside the 95 % band marked), and a panel of coverage per decade against the
    nominal 80 % and 95 %. ``history`` as for ``coverage_by_decade``; nothing is drawn (None)
    for a run without one.
    """
    shown = [h for h in HISTORY_HORIZONS if (history["horizon"] == h).any()]
    if not shown:
        return None
    fig, axes = plt.subplots(len(shown) + 1, 1, figsize=(12, 3.6 * (len(shown) + 1)), dpi=100)
    for ax, h in zip(axes, shown, strict=False):
        rows = history[history["horizon"] == h].dropna(subset=["lower_95"])
        x = pd.to_datetime(rows["target_month"])
        ax.fill_between(x, rows["lower_95"], rows["upper_95"], color="tab:blue", alpha=0.2, lw=0)
        ax.fill_between(x, rows["lower_80"], rows["upper_80"], color="tab:blue", alpha=0.35, lw=0)
        ax.plot(x, rows["actual"], color="black", lw=0.9, label="actual")
        outside = rows[~rows["actual"].between(rows["lower_95"], rows["upper_95"])]
        ax.scatter(
            pd.to_datetime(outside["target_month"]),
            outside["actual"],
            s=9,
            color="tab:red",
            zorder=5,
            label=f"outside the 95 % band ({len(outside)} of {len(rows)})",
        )
        model = path_models(rows.drop_duplicates("horizon"))
        ax.set_yscale("log")
        ax.set_title(f"h = {h}: {model}'s rolling bands, made from earlier errors only")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    decades = coverage_by_decade(history)
    ax = axes[-1]
    labels = list(decades["decade"])
    width = 0.8 / (2 * len(shown))
    for k, (h, pct) in enumerate((h, pct) for h in shown for pct in (80, 95)):
        column = f"h{h} {pct}"
        if column in decades:
            offsets = [i + (k - len(shown)) * width + width / 2 for i in range(len(labels))]
            ax.bar(offsets, decades[column], width=width, label=f"h = {h}, {pct} % band")
    for nominal in (0.80, 0.95):
        ax.axhline(nominal, color="gray", lw=0.8, ls="--")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylim(0.4, 1.02)
    ax.set_title("coverage per decade of the target month (dashed: nominal 80 % and 95 %)")
    ax.legend(loc="lower left", fontsize=8, ncols=len(shown) * 2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
