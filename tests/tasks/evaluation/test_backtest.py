from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.errors import PipelineError
from tasks.data.windows import Windows, make_windows
from tasks.evaluation.backtest import (
    max_origins,
    plan_segments,
    run_segment,
    summarize_backtest,
)
from tasks.evaluation.calibrate import WARM_UP
from tasks.evaluation.evaluate import diebold_mariano
from tests.conftest import synthetic_prices


def windows_of(n: int = 60, seed: int = 3) -> Windows:
    frame = synthetic_prices(n, seed=seed)
    return make_windows(frame["close"].to_numpy(), pd.DatetimeIndex(frame["date"]), 12)


def segment_run(segment, windows, **kw):
    options = {"scaling": "window", "epochs": 2, "batch_size": 16, "seed": 7}
    options.update(kw)
    return run_segment(segment, windows, **options)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("origins", "chunk_size", "keras_segments"),
    [(1, 1, [(47,)]), (4, 1, [(44,), (45,), (46,), (47,)]), (5, 2, [(43, 44), (45, 46), (47,)])],
)
def test_plan_cuts_keras_origins_into_chunks(origins, chunk_size, keras_segments) -> None:
    windows = windows_of()  # 60 rows → 48 samples
    segments = plan_segments(windows, ("naive", "drift", "gru"), origins, chunk_size)
    by_model = {m: [s.origins for s in segments if s.model == m] for m in ("naive", "drift", "gru")}
    assert by_model["gru"] == keras_segments
    every = tuple(range(48 - origins, 48))
    assert by_model["naive"] == by_model["drift"] == [every]  # baselines: one segment
    assert segments[0].first_target == windows.months[48 - origins].strftime("%Y-%m")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("origins", "chunk_size", "message"),
    [
        (0, 1, "--origins must be at least 1"),
        (-3, 1, "--origins must be at least 1"),
        (41, 1, "at most 40 origins"),
        (3, 0, "--chunk-size must be at least 1"),
    ],
)
def test_plan_rejects_impossible_origins(origins, chunk_size, message) -> None:
    windows = windows_of()
    assert max_origins(len(windows)) == 40
    with pytest.raises(PipelineError, match=message):
        plan_segments(windows, ("naive",), origins, chunk_size)


@pytest.mark.unit
def test_mean_gets_no_segment_of_its_own() -> None:
    segments = plan_segments(windows_of(), ("drift", "gru", "mean"), 3, 3)
    assert [s.model for s in segments] == ["drift", "gru"]


@pytest.mark.slow
def test_segment_fits_every_origin_from_scratch_in_one_stacked_fit() -> None:
    windows = windows_of()
    (segment,) = plan_segments(windows, ("lstm",), 3, 3)
    frame = segment_run(segment, windows)
    assert frame["seed"].tolist() == [7] * 3
    assert (frame["train_seconds"] > 0).all()
    assert frame["train_seconds"].nunique() == 1  # one fit's time, shared by its members
    assert frame["target_month"].tolist() == list(windows.months[-3:])
    assert (frame["origin_month"] == frame["target_month"] - pd.DateOffset(months=1)).all()
    assert (frame["horizon"] == 1).all()
    np.testing.assert_array_equal(frame["actual"], windows.y[-3:])
    assert np.isfinite(frame["point"]).all()
    stored = summarize_backtest([frame], windows).predictions
    # naive's errors before the first origin (the stand-in history) band even the first
    assert stored["fit"].tolist() == ["scratch"] * 3
    assert (stored["lower_95"] <= stored["lower_80"]).all()
    assert (stored["lower_80"] <= stored["upper_80"]).all()
    assert (stored["upper_80"] <= stored["upper_95"]).all()


def tampered_from(frame: pd.DataFrame, month: pd.Timestamp) -> Windows:
    """Windows of the series with every close from ``month`` on tripled."""
    close = frame["close"].to_numpy().copy()
    close[(pd.DatetimeIndex(frame["date"]) >= month)] *= 3.0
    return make_windows(close, pd.DatetimeIndex(frame["date"]), 12)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["naive", "drift", "simple_rnn", "gru", "lstm", "conv1d_lstm"])
def test_forecast_at_an_origin_never_sees_its_target_or_later(model) -> None:
    frame = synthetic_prices(60, seed=3)
    windows = windows_of()
    (segment,) = plan_segments(windows, (model,), 3, 3)  # origins 45, 46, 47: one stacked fit
    assert segment.origins == (45, 46, 47)
    # Every price from origin 46's target month on is tripled: the forecasts of the origins
    # up to 46 must not move, though their stacked fit shares batches with later months.
    target = windows.months[46]
    honest = segment_run(segment, windows)
    leaked = segment_run(segment, tampered_from(frame, target))
    assert leaked["point"].iloc[:2].tolist() == pytest.approx(
        honest["point"].iloc[:2].tolist(), rel=1e-6
    )
    assert leaked["actual"].iloc[1] == pytest.approx(3.0 * honest["actual"].iloc[1])
    # the last origin saw a tripled month, so its forecast moves: the tampering is real
    assert leaked["point"].iloc[2] != pytest.approx(honest["point"].iloc[2], rel=1e-3)


@pytest.mark.unit
def test_bands_use_only_the_errors_of_months_already_known() -> None:
    frame = synthetic_prices(90, seed=4)
    windows = make_windows(frame["close"].to_numpy(), pd.DatetimeIndex(frame["date"]), 12)
    (segment,) = plan_segments(windows, ("drift",), 40, 40)  # origins 38 … 77
    honest = summarize_backtest([segment_run(segment, windows)], windows).predictions
    banded = honest.dropna(subset=["lower_95"])
    # naive's 26 earlier errors (the stand-in) are past the warm-up: every origin has a band
    assert len(banded) == 40 > WARM_UP
    assert (banded["lower_95"] <= banded["lower_80"]).all()
    assert (banded["lower_80"] < banded["predicted"]).all()
    assert (banded["predicted"] < banded["upper_80"]).all()
    assert (banded["upper_80"] <= banded["upper_95"]).all()
    target = windows.months[70]  # tripled from here: origins up to 70 must keep every number
    tampered = tampered_from(frame, target)
    leaked = summarize_backtest([segment_run(segment, tampered)], tampered).predictions
    kept = honest["target_month"] <= target
    columns = ["predicted", "lower_80", "upper_80", "lower_95", "upper_95"]
    pd.testing.assert_frame_equal(leaked.loc[kept, columns], honest.loc[kept, columns])
    assert not np.allclose(leaked.loc[~kept, "upper_95"], honest.loc[~kept, "upper_95"])


@pytest.mark.slow
def test_an_origin_forecasts_with_a_seed_ensemble() -> None:
    windows = windows_of()
    (segment,) = plan_segments(windows, ("gru",), 2, 2)
    one = segment_run(segment, windows, seeds=1)
    three = segment_run(segment, windows, seeds=3)
    assert three["seed"].tolist() == [7, 7]  # the ensemble's first seed
    assert not np.allclose(one["point"], three["point"])  # more members, new mean
    assert np.isfinite(three["point"]).all()


@pytest.mark.unit
def test_drift_refits_on_each_origins_past() -> None:
    windows = windows_of()
    (segment,) = plan_segments(windows, ("drift",), 2, 1)
    frame = segment_run(segment, windows)
    for row, i in zip(frame.itertuples(), segment.origins, strict=True):
        mean = np.mean(np.log(windows.y[:i] / windows.X[:i, -1]))
        assert row.point == pytest.approx(windows.X[i, -1] * np.exp(mean))


@pytest.mark.unit
def test_diebold_mariano_matches_a_hand_computation() -> None:
    # d = e1² - e2² = [1, -1, 2, 0, 3]: mean 1, autocovariance 2, var(d̄) = 0.4, DM = 1 / √0.4,
    # HLN factor √((5 + 1 - 2) / 5) = √0.8, so the statistic is √2 on 4 degrees of freedom.
    e_model = np.sqrt(np.array([2.0, 0.0, 3.0, 1.0, 4.0]))
    e_base = np.ones(5)
    result = diebold_mariano(e_model, e_base)
    assert result.n == 5
    assert result.stat == pytest.approx(math.sqrt(2.0))
    assert result.pvalue == pytest.approx(2 * stats.t.sf(math.sqrt(2.0), 4))
    assert result.pvalue == pytest.approx(0.2302, abs=1e-4)
    swapped = diebold_mariano(e_base, e_model)
    assert swapped.stat == pytest.approx(-result.stat)
    assert swapped.pvalue == pytest.approx(result.pvalue)


@pytest.mark.unit
def test_diebold_mariano_finds_a_clearly_better_forecast() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(0, 2.0, 120)
    better = rng.normal(0, 1.0, 120)
    result = diebold_mariano(better, base)
    assert result.stat < 0
    assert result.pvalue < 0.001


@pytest.mark.unit
@pytest.mark.parametrize(
    ("e_model", "e_base"),
    [([1.0], [2.0]), ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]), ([1.0, -2.0], [-1.0, 2.0])],
)
def test_diebold_mariano_is_undefined_without_variation(e_model, e_base) -> None:
    result = diebold_mariano(np.array(e_model), np.array(e_base))
    assert math.isnan(result.stat)
    assert math.isnan(result.pvalue)


@pytest.mark.unit
def test_diebold_mariano_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="equal length"):
        diebold_mariano(np.ones(3), np.ones(4))


@pytest.mark.unit
def test_summary_scores_each_model_and_compares_with_naive() -> None:
    windows = windows_of()
    segments = plan_segments(windows, ("naive", "drift"), 10, 1)
    frames = [segment_run(s, windows) for s in segments]
    results = summarize_backtest(frames, windows, ("naive", "drift", "mean"))
    assert len(results.predictions) == 30
    mean = results.predictions[results.predictions["model"] == "mean"]
    drift = results.predictions[results.predictions["model"] == "drift"]
    np.testing.assert_array_equal(mean["predicted"], drift["predicted"])  # mean of one
    metrics = results.metrics.set_index("model")
    assert set(metrics["split"]) == {"backtest"}
    assert metrics.loc["naive", "theil_u2"] == pytest.approx(1.0)
    naive_rmse = np.sqrt(np.mean((windows.y[-10:] - windows.X[-10:, -1]) ** 2))
    assert metrics.loc["naive", "rmse"] == pytest.approx(naive_rmse)
    assert metrics.loc["drift", "n"] == 10
    comparison, _, _ = results.comparisons.to_dict("records")  # drift, mean vs naive, drift
    assert comparison["model"] == "drift"
    assert comparison["baseline"] == "naive"
    assert comparison["n"] == 10
    assert 0.0 <= comparison["dm_pvalue"] <= 1.0
