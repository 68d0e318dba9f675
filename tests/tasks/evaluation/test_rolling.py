from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import SettingsError
from tasks.data.windows import make_windows
from tasks.evaluation.rolling import (
    MIN_ROLLING_SAMPLES,
    calibrate_rolling,
    combine_rolling,
    plan_rolling,
    rolling_comparisons,
    rolling_forecasts,
    rolling_frame,
    rolling_metrics,
    stand_in_errors,
)
from tasks.models.fit import fit_every_role
from tests.conftest import synthetic_prices

FIT = {"scaling": "window", "epochs": 1, "batch_size": 16, "seed": 3}


def windows_of(frame: pd.DataFrame, window: int = 12):
    return make_windows(frame["close"].to_numpy(), pd.DatetimeIndex(frame["date"]), window)


@pytest.mark.unit
def test_origins_every_refit_months_from_evaluate_from() -> None:
    windows = windows_of(synthetic_prices(120, start="1990-01-01"))  # targets 1991-01 …
    plan = plan_rolling(windows, "1996-01", 12, 6)
    first = list(windows.months).index(pd.Timestamp("1996-02-01"))  # first forecast's target
    assert plan.cuts[0] == first  # fit on targets ≤ 1996-01
    assert windows.months[plan.cuts[0] - 1] == pd.Timestamp("1996-01-01")
    assert np.diff(plan.cuts).tolist() == [12] * (len(plan.cuts) - 1)
    assert plan.stops[-1] == len(windows) and plan.stops[:-1] == plan.cuts[1:]
    default = plan_rolling(windows, None, 12, 6)  # 1975-01 is before this series: its first
    assert default.cuts[0] == MIN_ROLLING_SAMPLES


@pytest.mark.unit
@pytest.mark.parametrize(
    ("evaluate_from", "refit_every", "message"),
    [
        ("1991-06", 12, r"^invalid settings: evaluate_from: 1991-06 is outside 1993-12 … 1999-11"),
        ("1999-12", 12, r"^invalid settings: evaluate_from: 1999-12 is outside"),
        ("2030-01", 12, r"is outside"),
        ("1996-01", 0, r"^invalid settings: refit_every: must be at least 1, got 0$"),
    ],
)
def test_impossible_origins_fail_in_one_line(evaluate_from, refit_every, message) -> None:
    windows = windows_of(synthetic_prices(120, start="1990-01-01"))
    with pytest.raises(SettingsError, match=message):
        plan_rolling(windows, evaluate_from, refit_every, 3)


@pytest.mark.unit
def test_naive_rolling_errors_are_the_series_own_h_month_changes() -> None:
    prices = synthetic_prices(150, start="1980-01-01")
    windows = windows_of(prices)
    plan = plan_rolling(windows, "1985-06", 12, 12)
    frame, _ = rolling_forecasts("naive", windows, plan, **FIT)
    close = prices.set_index(pd.DatetimeIndex(prices["date"]))["close"]
    for h in range(1, 13):
        rows = frame[frame["horizon"] == h]
        made = pd.DatetimeIndex(rows["forecast_month"])
        np.testing.assert_array_equal(rows["point"], close.loc[made].to_numpy())
        np.testing.assert_array_equal(rows["actual"], close.loc[made + pd.DateOffset(months=h)])
        assert made[0] == pd.Timestamp("1985-06-01")
        assert rows["target_month"].max() == close.index[-1]  # every known target, no more
        assert len(rows) == len(close.loc["1985-06-01":]) - h


@pytest.mark.unit
def test_mean_rolling_points_average_its_components_row_by_row() -> None:
    windows = windows_of(synthetic_prices(120, start="1980-01-01"))
    plan = plan_rolling(windows, "1985-06", 12, 6)
    naive, _ = rolling_forecasts("naive", windows, plan, **FIT)
    drift, _ = rolling_forecasts("drift", windows, plan, **FIT)
    mean = combine_rolling("mean", [drift, naive.sample(frac=1.0, random_state=1)])
    assert (mean["model"] == "mean").all() and len(mean) == len(drift)
    merged = mean.merge(drift, on=["forecast_month", "horizon"], suffixes=("", "_drift"))
    merged = merged.merge(naive, on=["forecast_month", "horizon"], suffixes=("", "_naive"))
    np.testing.assert_allclose(merged["point"], (merged["point_drift"] + merged["point_naive"]) / 2)
    np.testing.assert_array_equal(merged["actual"], merged["actual_drift"])
    with pytest.raises(ValueError, match="different months"):
        combine_rolling("mean", [drift, naive.iloc[1:]])
    with pytest.raises(ValueError, match="at least one"):
        combine_rolling("mean", [])


def run_path(model: str, windows, plan, **kw):
    """The rolling forecasts as a run makes them: inside the model's one stacked fit."""
    split_at = int(len(windows) * 0.8)
    fits = fit_every_role(model, windows, split_at, plan.cuts, seeds=2, **FIT, **kw)
    return rolling_frame(model, windows, plan, fits.origins)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["naive", "drift", "gru"])
def test_tampering_after_month_t_leaves_every_forecast_and_band_made_by_t(model: str) -> None:
    prices = synthetic_prices(130, start="1980-01-01")
    windows = windows_of(prices)
    plan = plan_rolling(windows, "1985-01", 12, 4)
    honest = run_path(model, windows, plan)
    honest, _ = calibrate_rolling(honest, windows)
    for t in ("1986-03-01", "1988-06-01"):
        tampered = prices.copy()
        later = pd.DatetimeIndex(tampered["date"]) > pd.Timestamp(t)
        tampered.loc[later, "close"] *= 3.0
        tampered_windows = windows_of(tampered)
        leaked = run_path(model, tampered_windows, plan)
        leaked, _ = calibrate_rolling(leaked, tampered_windows)
        made = honest["forecast_month"] <= pd.Timestamp(t)
        columns = ["point", "lower_80", "upper_80", "lower_95", "upper_95"]
        pd.testing.assert_frame_equal(
            leaked.loc[made, columns], honest.loc[made, columns], check_exact=True
        )
        assert not np.allclose(leaked.loc[~made, "point"], honest.loc[~made, "point"])


@pytest.mark.unit
def test_metrics_coverage_and_champions_per_horizon() -> None:
    months = pd.date_range("2000-01-01", periods=40, freq="MS")
    close = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0.01, 0.03, 40)))
    windows = make_windows(close, months, 3)
    made = windows.months[5:-1] - pd.DateOffset(months=1)
    rows = []
    for model, bias in (("naive", 0.0), ("drift", 0.5), ("gru", 5.0)):
        for h in (1, 2):
            for m in made[: len(made) - h + 1]:
                j = list(windows.months).index(m + pd.DateOffset(months=1))
                actual = windows.y[j + h - 1]
                point = windows.X[j, -1] + (actual - windows.X[j, -1]) * (bias / 10)
                rows.append(
                    {
                        "model": model,
                        "forecast_month": m,
                        "horizon": h,
                        "point": point,
                        "actual": actual,
                        "lower_80": point - 1.0,
                        "upper_80": point + 1.0,
                        "lower_95": point - 2.0,
                        "upper_95": point + 2.0,
                    }
                )
    frame = pd.DataFrame(rows)
    metrics = rolling_metrics(frame, windows)
    naive = metrics[metrics["model"] == "naive"]
    assert naive["theil_u2"].tolist() == [1.0, 1.0]
    at1 = frame[(frame["model"] == "gru") & (frame["horizon"] == 1)]
    inside = ((at1["actual"] >= at1["lower_95"]) & (at1["actual"] <= at1["upper_95"])).mean()
    gru1 = metrics[(metrics["model"] == "gru") & (metrics["horizon"] == 1)].iloc[0]
    assert gru1["coverage_95"] == pytest.approx(inside)
    assert gru1["n"] == len(at1)
    assert gru1["width_95"] == pytest.approx(np.mean(4.0 / at1["point"]))
    comparisons = rolling_comparisons(frame)
    assert set(comparisons["horizon"]) == {1, 2}
    assert set(comparisons["split"]) == {"rolling"}
    assert (metrics["coverage_95_low"] <= metrics["coverage_95"]).all()
    assert (metrics["coverage_95"] <= metrics["coverage_95_high"]).all()
    assert (metrics["coverage_80_low"] <= metrics["coverage_80_high"]).all()


@pytest.mark.unit
@pytest.mark.parametrize("horizon", [1, 5])
def test_the_stand_in_is_a_baselines_errors_before_the_first_month(horizon: int) -> None:
    """A steady 1 % a month: naive misses by h %, drift (mean return so far) by nothing."""
    months = pd.date_range("1990-01-01", periods=80, freq="MS")
    close = 100 * np.exp(0.01 * np.arange(80))
    windows = make_windows(close, months, 12)
    before = pd.Timestamp("1993-01-01")
    naive = stand_in_errors(windows, horizon, before, "naive")
    drift = stand_in_errors(windows, horizon, before, "drift")
    expected = int(np.searchsorted(windows.months, before, side="right")) - horizon + 1
    assert len(naive) == len(drift) == expected  # only targets up to `before`
    np.testing.assert_allclose(naive, 0.01 * horizon)
    np.testing.assert_allclose(drift, 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="naive or drift"):
        stand_in_errors(windows, horizon, before, "arima")
