"""Peers on the run's own protocol: statsforecast AutoARIMA and AutoETS on log closes.

Run with ``make bench`` (after ``benchmarks/rolling.py --keep``) or
``.venv/bin/python benchmarks/peers.py --warehouse W``, where ``W`` holds a default
``sp500 run``. The peers get the run's rolling plan exactly (``plan_rolling`` of
``tasks.evaluation.rolling``, with the run's settings): refitted at every origin on the log
closes up to it, and from every month t until the next origin they forecast t+1 … t+12 with
the origin's parameters applied to the closes up to t (statsforecast's ``forward``). Points
are exp(mean log forecast).

Two kinds of band for each peer: its own model intervals (Gaussian on the log scale), and
the run's online conformal bands (``tasks.evaluation.calibrate``, earlier errors only)
around its points. Beside them, from the run's warehouse: its champion per horizon,
``mean`` and naive. Interval scores are compared on the forecast months where the champion
has a band. Writes ``benchmarks/results/peers.json`` and ``peers.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import DATA, describe, where_ran, write_results

from core.settings import Settings
from tasks.data.windows import make_windows
from tasks.evaluation.calibrate import interval_score
from tasks.evaluation.rolling import FORECAST_COLUMNS, calibrate_rolling, plan_rolling
from warehouse.store import query

SHOWN = (1, 3, 6, 12)
LEVELS = (80, 95)


def peer_forecasts(close: np.ndarray, months: pd.DatetimeIndex, name: str) -> pd.DataFrame:
    """One peer's rolling forecasts on the run's plan, with its own 80/95 % intervals."""
    from statsforecast.models import AutoARIMA, AutoETS

    settings = Settings()
    windows = make_windows(close, months, settings.window)
    plan = plan_rolling(windows, settings.evaluate_from, settings.refit_every, settings.horizon)
    y = np.log(close)
    w, n = settings.window, len(windows)
    rows = []
    for cut, stop in zip(plan.cuts, plan.stops, strict=True):
        model = {"AutoARIMA": AutoARIMA, "AutoETS": AutoETS}[name]()
        model.fit(y[: cut + w])  # closes up to the origin month, months[cut - 1]
        for j in range(cut, stop):  # forecast month: the close at index j + w - 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = model.forward(y[: j + w], h=plan.horizon, level=list(LEVELS))
            for h in range(1, plan.horizon + 1):
                target = j + h - 1
                if target >= n:
                    break
                row = {
                    "model": name,
                    "origin_month": windows.months[cut - 1],
                    "forecast_month": months[j + w - 1],
                    "horizon": h,
                    "target_month": windows.months[target],
                    "point": float(np.exp(out["mean"][h - 1])),
                    "actual": float(windows.y[target]),
                }
                for level in LEVELS:
                    row[f"native_lower_{level}"] = float(np.exp(out[f"lo-{level}"][h - 1]))
                    row[f"native_upper_{level}"] = float(np.exp(out[f"hi-{level}"][h - 1]))
                rows.append(row)
    return pd.DataFrame(rows)


def scores(frame: pd.DataFrame, bands: str, months: set[pd.Timestamp] | None) -> dict:
    """RMSE over every forecast, coverage and interval scores over banded (and shared) months."""
    out = {
        "n": len(frame),
        "rmse": float(np.sqrt(np.mean((frame["actual"] - frame["point"]) ** 2))),
    }
    banded = frame.dropna(subset=[f"{bands}lower_95"])
    if months is not None:
        banded = banded[banded["forecast_month"].isin(months)]
    out["banded"] = len(banded)
    for level in LEVELS:
        low, high = banded[f"{bands}lower_{level}"], banded[f"{bands}upper_{level}"]
        out[f"coverage_{level}"] = float(banded["actual"].between(low, high).mean())
        out[f"is_{level}"] = float(
            np.mean(interval_score(banded["actual"], low, high, level / 100))
        )
    out["below_95"] = float((banded["actual"] < banded[f"{bands}lower_95"]).mean())
    return out


def run_rows(warehouse: Path) -> tuple[pd.DataFrame, dict[int, str]]:
    """The run's rolling predictions and its champion per horizon."""
    columns, rows = query(warehouse, "SELECT * FROM rolling_predictions")
    frame = pd.DataFrame(rows, columns=columns)
    for c in ("origin_month", "forecast_month", "target_month"):
        frame[c] = pd.to_datetime(frame[c])
    _, champions = query(warehouse, "SELECT horizon, model FROM champions")
    return frame, dict(champions)


def main() -> None:
    """Fit the peers, score everything per horizon, write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--warehouse", type=Path, required=True, help="a default sp500 run's")
    args = parser.parse_args()
    prices = pd.read_csv(args.data)
    close = prices["close"].to_numpy(dtype=np.float64)
    months = pd.DatetimeIndex(prices["date"])
    ours, champions = run_rows(args.warehouse)
    windows = make_windows(close, months, Settings().window)
    peers, seconds = {}, {}
    for name in ("AutoARIMA", "AutoETS"):
        started = time.perf_counter()
        frame = peer_forecasts(close, months, name)
        seconds[name] = time.perf_counter() - started
        online, _ = calibrate_rolling(frame[FORECAST_COLUMNS], windows)
        peers[name] = online.merge(
            frame[["forecast_month", "horizon", *[c for c in frame if c.startswith("native")]]],
            on=["forecast_month", "horizon"],
        )
        print(f"{name}: {len(frame)} forecasts in {seconds[name]:.1f} s", flush=True)
    table = []
    for h in SHOWN:
        champion = champions[h]
        mine = ours[(ours["horizon"] == h) & (ours["model"] == champion)]
        shared = set(mine.dropna(subset=["lower_95"])["forecast_month"])
        entries = [(f"champion ({champion})", mine, "")]
        for model in ("mean", "naive"):
            if model != champion:
                entries.append((model, ours[(ours["horizon"] == h) & (ours["model"] == model)], ""))
        for name, frame in peers.items():
            at_h = frame[frame["horizon"] == h]
            entries += [
                (f"{name}, own intervals", at_h, "native_"),
                (f"{name}, online bands", at_h, ""),
            ]
        for label, frame, bands in entries:
            table.append({"horizon": h, "model": label, **scores(frame, bands, shared)})
    meta = {**where_ran(), "peer_seconds": seconds, "warehouse": str(args.warehouse)}
    lines = [
        f"Peers on the run's rolling protocol (refit every 12 months from 1975-01, forecasts"
        f" 1 … 12 months from every month; {describe(meta)}). RMSE over every forecast;"
        " coverage, share below the 95 % band and interval (Winkler) scores over the forecast"
        " months where the champion has a band. Peers: statsforecast on log closes;"
        ' "own intervals" are the model\'s, "online bands" the run\'s conformal procedure'
        " around the peer's points.",
        "",
        "| h | model | RMSE | cover 80 | cover 95 | below 95 | IS 80 | IS 95 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table:
        lines.append(
            f"| {r['horizon']} | {r['model']} | {r['rmse']:.1f} | {r['coverage_80']:.3f} |"
            f" {r['coverage_95']:.3f} | {r['below_95']:.3f} | {r['is_80']:.1f} | {r['is_95']:.1f} |"
        )
    lines.append("")
    for h in (3, 6, 12):
        at_h = {r["model"]: r for r in table if r["horizon"] == h}
        mine = next(v for k, v in at_h.items() if k.startswith("champion"))
        arima = at_h["AutoARIMA, own intervals"]
        verdict = "met" if mine["is_95"] <= arima["is_95"] else "missed"
        lines.append(
            f"Champion's 95 % interval score at h = {h}: {mine['is_95']:.1f} against"
            f" AutoARIMA's {arima['is_95']:.1f} (own intervals),"
            f" {at_h['AutoARIMA, online bands']['is_95']:.1f} (online bands), on"
            f" {mine['banded']} forecast months: no worse than AutoARIMA's own, {verdict}."
        )
    lines += [
        f"Peer time: AutoARIMA {seconds['AutoARIMA']:.0f} s, AutoETS {seconds['AutoETS']:.0f} s"
        " (fits and forward passes, one process).",
    ]
    write_results("peers", {"meta": meta, "table": table}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
