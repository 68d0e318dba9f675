"""What was tried for the 12-month bands: ACI step sizes, tails, volatility-scaled errors.

Naive's and drift's rolling forecasts (the run's plan: refit every 12 months from 1975-01)
are banded by ``tasks.evaluation.calibrate.online_bands`` under variants: the ACI step
``gamma`` (constant, or growing with h), a level beyond the sample capped at the extreme
error or continued at the tail's slope (the run's), and "studentized" errors (each log
error divided by the standard deviation of the monthly log returns in the forecast's own
input window, the band scaled back by it). Coverage, share below the 95 % band and Winkler
interval scores at h = 1, 3, 6, 12. Naive and drift fit nothing, so this needs no network
and takes seconds. Writes ``benchmarks/results/calibration.json`` and ``calibration.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import DATA, describe, where_ran, write_results

from tasks.data.windows import make_windows
from tasks.evaluation.calibrate import GAMMA, interval_score, online_bands
from tasks.evaluation.rolling import plan_rolling, rolling_forecasts

SHOWN = (1, 3, 6, 12)
VARIANTS = {  # name: (gamma at horizon h, studentize, extrapolate past the sample)
    f"gamma {GAMMA}, tails extrapolated (the run's)": (lambda h: GAMMA, False, True),
    "gamma 0.005, capped at the extremes (before)": (lambda h: 0.005, False, False),
    "gamma 0.005, tails extrapolated": (lambda h: 0.005, False, True),
    "gamma 0.02, capped": (lambda h: 0.02, False, False),
    "gamma 0.005 x h, capped": (lambda h: 0.005 * h, False, False),
    "studentized, gamma 0.005, capped": (lambda h: 0.005, True, False),
}


def scored(
    group: pd.DataFrame, h: int, gamma: float, scale: np.ndarray, extrapolate: bool
) -> dict[str, float]:
    """Coverage, below-95 share and interval scores of one variant at one horizon."""
    stamps = pd.DatetimeIndex(group["forecast_month"])
    made = (stamps.year * 12 + stamps.month - 1).to_numpy()
    errors = np.log(group["actual"].to_numpy() / group["point"].to_numpy())
    bands = online_bands(
        made, h, errors / scale, int(made[-1]) + h, gamma=gamma, extrapolate=extrapolate
    )
    ok = ~np.isnan(bands.lower[0.95])
    point, actual = group["point"].to_numpy()[ok], group["actual"].to_numpy()[ok]
    out: dict[str, float] = {"banded": int(ok.sum())}
    for level in (0.80, 0.95):
        low = point * np.exp(bands.lower[level][ok] * scale[ok])
        high = point * np.exp(bands.upper[level][ok] * scale[ok])
        pct = round(level * 100)
        out[f"coverage_{pct}"] = float(np.mean((actual >= low) & (actual <= high)))
        out[f"is_{pct}"] = float(np.mean(interval_score(actual, low, high, level)))
        if level == 0.95:
            out["below_95"] = float(np.mean(actual < low))
    return out


def main() -> None:
    """Band naive and drift every way, write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    prices = pd.read_csv(args.data)
    windows = make_windows(
        prices["close"].to_numpy(dtype=np.float64), pd.DatetimeIndex(prices["date"]), 12
    )
    plan = plan_rolling(windows, None, 12, 12)
    rows = []
    for model in ("naive", "drift"):
        frame, _ = rolling_forecasts(
            model, windows, plan, scaling="window", epochs=1, batch_size=32, seed=42
        )
        index = {m: j for j, m in enumerate(windows.months)}
        for h in SHOWN:
            group = frame[frame["horizon"] == h].sort_values("forecast_month")
            # the input window of a forecast made at t is the window of the sample targeting t+1
            rows_x = windows.X[
                [index[m + pd.DateOffset(months=1)] for m in group["forecast_month"]]
            ]
            volatility = np.diff(np.log(rows_x), axis=1).std(axis=1, ddof=1)
            for name, (gamma, studentize, extrapolate) in VARIANTS.items():
                scale = volatility if studentize else np.ones(len(group))
                rows.append(
                    {
                        "model": model,
                        "horizon": h,
                        "variant": name,
                        **scored(group, h, gamma(h), scale, extrapolate),
                    }
                )
    meta = where_ran()
    lines = [
        f"Bands of naive and drift under variants of the online procedure, rolling plan from"
        f" 1975-01 ({describe(meta)}). Targets: cover 80 0.77-0.83, cover 95 0.93-0.97,"
        " below 95 ≤ 0.035.",
        "",
        "| model | h | variant | cover 80 | cover 95 | below 95 | IS 80 | IS 95 |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['horizon']} | {r['variant']} | {r['coverage_80']:.3f} |"
            f" {r['coverage_95']:.3f} | {r['below_95']:.3f} | {r['is_80']:.1f} |"
            f" {r['is_95']:.1f} |"
        )
    write_results("calibration", {"meta": meta, "rows": rows}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
