"""Which online bands: every calibrator on the same rolling forecasts, judged by a proper score.

Reads the rolling forecasts (points and actuals) of a default ``sp500 run`` from each
``--warehouse`` (one per seed; without one, naive's and drift's are computed here, which
needs no network) and bands every model under each variant:

- ``before``: the bands of commit 80e0096 (ACI, gamma 0.01, a level beyond the sample
  continued past the extreme error at the tail's slope; no stand-in, no monotone pass);
- ``conformal``, ``bounded ACI``, ``quantile tracking``: one calibrator each, with the
  stand-in history (naive's errors before the first rolling month);
- ``choice`` (the run's): the online choice among conformal, two trackers and bounded ACI
  by past pinball loss, with naive's earlier errors as the stand-in (the run's), with
  drift's, without a stand-in, and without the past-moves guard.

Every variant except ``before`` is made monotone in h and (but one) kept within the index's
own moves, as the run does. Scores are over the months ``before`` bands (its warm-up leaves
the first 24 + h - 1 without a band), so ratios compare like with like: the 80 % and 95 %
interval scores, coverage, the shares below and above the 95 % band, each share with a 90 %
stationary block-bootstrap interval (``tasks.evaluation.calibrate.coverage_intervals``).
Writes ``benchmarks/results/calibration.json`` and ``calibration.md``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import DATA, describe, where_ran, write_results

from tasks.data.windows import make_windows
from tasks.evaluation.calibrate import (
    LEVELS,
    BoundedACI,
    Bounds,
    Calibrator,
    Conformal,
    ErrorPool,
    QuantileTracker,
    coverage_intervals,
    default_calibrator,
    interval_score,
    side_miss_rate,
)
from tasks.evaluation.rolling import FORECAST_COLUMNS, calibrate_rolling, plan_rolling
from tasks.evaluation.rolling import rolling_forecasts as baseline_forecasts
from warehouse.store import query

SHOWN = (1, 3, 6, 12)
NOMINAL = {"coverage_80": 0.80, "coverage_95": 0.95, "below_95": 0.025, "above_95": 0.025}


class ContinuedACI(BoundedACI):
    """The bands before this benchmark's change: ACI whose level may leave the sample.

    The same updates as ``BoundedACI``, without its bounds: a level beyond the sample
    continues the empirical quantile function past the extreme error at the slope between
    the extreme and the nominal order statistic.
    """

    def __init__(self, gamma: float = 0.01) -> None:
        """ACI with step ``gamma``."""
        super().__init__(gamma)
        self.name = "before: ACI gamma 0.01, tails continued"

    def bounds(self, pool: ErrorPool) -> Bounds:  # noqa: D102
        ordered, n = pool.sorted, len(pool)
        out = {}
        for level, (a_low, a_high) in self.rates.items():
            low, high = pool.conformal(a_low, a_high)
            k = min(max(math.ceil((n + 1) * side_miss_rate(level)), 2), n)
            low_rank, high_rank = (n + 1) * a_low, (n + 1) * (1.0 - a_high)
            if low_rank < 1:
                low -= (1.0 - low_rank) * (ordered[k - 1] - ordered[0]) / (k - 1)
            if high_rank > n:
                high += (high_rank - n) * (ordered[-1] - ordered[n - k]) / (k - 1)
            out[level] = (low, high)
        return out


RUNS = "choice (the run's)"
# name: (calibrator, stand-in, monotone and guarded as the run)
VARIANTS: dict[str, tuple[Callable[[], Calibrator], dict[str, bool]]] = {
    "before": (ContinuedACI, {"stand_in": False, "monotone": False, "guard": False}),
    "conformal, stand-in": (Conformal, {}),
    "bounded ACI 0.005, stand-in": (lambda: BoundedACI(0.005), {}),
    "quantile tracking 0.1, stand-in": (lambda: QuantileTracker(0.1), {}),
    RUNS: (default_calibrator, {}),
    "choice, drift's errors as the stand-in": (default_calibrator, {"stand_in_baseline": "drift"}),
    "choice, no stand-in": (default_calibrator, {"stand_in": False}),
    "choice, no past-moves guard": (default_calibrator, {"guard": False}),
}


def scores(banded: pd.DataFrame, h: int) -> dict[str, float]:
    """Interval scores and the four shares with their bootstrap intervals, months in order."""
    banded = banded.sort_values("forecast_month")
    actual = banded["actual"].to_numpy()
    out: dict[str, float] = {"n": len(banded)}
    hits = {}
    for level in LEVELS:
        pct = round(level * 100)
        low, high = banded[f"lower_{pct}"].to_numpy(), banded[f"upper_{pct}"].to_numpy()
        out[f"is_{pct}"] = float(np.mean(interval_score(actual, low, high, level)))
        hits[f"coverage_{pct}"] = (actual >= low) & (actual <= high)
    hits["below_95"] = actual < banded["lower_95"].to_numpy()
    hits["above_95"] = actual > banded["upper_95"].to_numpy()
    lows, highs = coverage_intervals(np.column_stack(list(hits.values())), h)
    for k, (name, hit) in enumerate(hits.items()):
        out[name] = float(np.mean(hit))
        out[f"{name}_low"], out[f"{name}_high"] = float(lows[k]), float(highs[k])
    return out


def forecasts_from(warehouse: Path | None, windows) -> pd.DataFrame:
    """Every model's rolling forecasts (no bands) from a run's warehouse, or naive/drift."""
    if warehouse is None:
        plan = plan_rolling(windows, None, 12, 12)
        frames = [
            baseline_forecasts(
                m, windows, plan, scaling="window", epochs=1, batch_size=32, seed=42
            )[0]
            for m in ("naive", "drift")
        ]
        return pd.concat(frames, ignore_index=True)
    columns, rows = query(
        warehouse,
        f"SELECT {', '.join(FORECAST_COLUMNS)} FROM rolling_predictions WHERE run_id = ("
        " SELECT run_id FROM runs WHERE status = 'completed' AND kind = 'retrain'"
        " ORDER BY finished_at DESC LIMIT 1)",
    )
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("origin_month", "forecast_month", "target_month"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


def main() -> None:
    """Band every model every way, score, write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--warehouse", type=Path, nargs="*", default=[], help="default runs' warehouses"
    )
    args = parser.parse_args()
    prices = pd.read_csv(args.data)
    windows = make_windows(
        prices["close"].to_numpy(dtype=np.float64), pd.DatetimeIndex(prices["date"]), 12
    )
    rows = []
    for warehouse in args.warehouse or [None]:
        frame = forecasts_from(warehouse, windows)
        label = warehouse.stem if warehouse else "baselines"
        for model, group in frame.groupby("model", sort=False):
            banded = {
                name: calibrate_rolling(group, windows, make, **flags)[0]
                for name, (make, flags) in VARIANTS.items()
            }
            common = banded["before"].dropna(subset=["lower_95"])[["forecast_month", "horizon"]]
            for name, bands in banded.items():
                kept = bands.merge(common, on=["forecast_month", "horizon"])
                for h in SHOWN:
                    at_h = kept[kept["horizon"] == h]
                    rows.append(
                        {"run": label, "model": model, "horizon": h, "variant": name}
                        | scores(at_h, h)
                    )
            print(f"{label} {model}: banded every way", flush=True)
    render(where_ran(), rows)


def within(row: dict[str, float], name: str) -> bool:
    """The share's bootstrap interval contains its nominal value."""
    return row[f"{name}_low"] <= NOMINAL[name] <= row[f"{name}_high"]


def checks(rows: list[dict[str, object]]) -> list[str]:
    """The issue's targets for the run's variant, one line per miss."""
    table = pd.DataFrame(rows)
    misses = []
    before = table[table["variant"] == "before"].set_index(["run", "model", "horizon"])
    runs = table[table["variant"] == RUNS].set_index(["run", "model", "horizon"])
    limit = {1: 1.02, 3: 0.90, 6: 0.85, 12: 0.85}
    for key, row in runs.iterrows():
        run, model, h = key
        ratio = row["is_95"] / before.loc[key, "is_95"]
        if ratio > limit[h]:
            misses.append(f"{run} {model} h={h}: IS 95 ratio {ratio:.3f} > {limit[h]}")
        for name, nominal in NOMINAL.items():
            if not within(row.to_dict(), name):
                misses.append(
                    f"{run} {model} h={h}: {name} {row[name]:.3f} interval"
                    f" {row[f'{name}_low']:.3f}-{row[f'{name}_high']:.3f} misses {nominal}"
                )
        floor = 0.90 if h == 12 else 0.92
        if row["coverage_95"] < floor:
            misses.append(f"{run} {model} h={h}: coverage_95 {row['coverage_95']:.3f} < {floor}")
    return misses


def render(meta: dict[str, object], rows: list[dict[str, object]]) -> None:
    """Write calibration.json and calibration.md."""
    table = pd.DataFrame(rows)
    lines = [
        f"Online bands under each calibrator, on the rolling forecasts of default `sp500 run`s"
        f" ({describe(meta)}). Months: those the `before` bands cover (their warm-up leaves"
        " none for the first 24 + h - 1). IS: interval (Winkler) score, index points, lower"
        " is better; ratio: IS 95 over `before`'s. Shares with a 90 % stationary"
        " block-bootstrap interval; `*` marks an interval that misses the nominal value.",
        "",
        "Mean over the models of each run (IS 95 ratio: the largest over the models):",
        "",
        "| run | h | variant | IS 80 | IS 95 | IS 95 ratio (max) | intervals missing nominal |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    before = table[table["variant"] == "before"].set_index(["run", "model", "horizon"])["is_95"]
    table["ratio"] = [
        r.is_95 / before.loc[(r.run, r.model, r.horizon)] for r in table.itertuples(index=False)
    ]
    table["missing"] = [
        sum(not within(r, name) for name in NOMINAL) for r in table.to_dict("records")
    ]
    for (run, h, variant), g in table.groupby(["run", "horizon", "variant"], sort=False):
        lines.append(
            f"| {run} | {h} | {variant} | {g['is_80'].mean():.1f} | {g['is_95'].mean():.1f} |"
            f" {g['ratio'].max():.3f} | {int(g['missing'].sum())} of {4 * len(g)} |"
        )

    def share(r: dict[str, float], name: str) -> str:
        mark = "" if within(r, name) else "*"
        return f"{r[name]:.3f} ({r[f'{name}_low']:.3f}-{r[f'{name}_high']:.3f}){mark}"

    lines += [
        "",
        f"The run's variant ({RUNS}), every model:",
        "",
        "| run | model | h | n | IS 80 | IS 95 | ratio | cover 80 | cover 95 | below 95 |"
        " above 95 |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|---|",
    ]
    for r in table[table["variant"] == RUNS].to_dict("records"):
        lines.append(
            f"| {r['run']} | {r['model']} | {r['horizon']} | {r['n']} | {r['is_80']:.1f} |"
            f" {r['is_95']:.1f} | {r['ratio']:.3f} | {share(r, 'coverage_80')} |"
            f" {share(r, 'coverage_95')} | {share(r, 'below_95')} | {share(r, 'above_95')} |"
        )
    misses = checks(rows)
    lines += [
        "",
        "Targets for the run's variant (IS 95 against `before`: ≤ 1.02 at h = 1, ≤ 0.90 at"
        " h = 3, ≤ 0.85 at h = 6 and 12; every bootstrap interval contains its nominal value;"
        " the 95 % band covers ≥ 0.92 at h ≤ 6 and ≥ 0.90 at h = 12): "
        + ("all met." if not misses else f"{len(misses)} missed:"),
        *[f"- {m}" for m in misses],
    ]
    write_results("calibration", {"meta": meta, "rows": rows}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
