from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tasks.backtest import (
    diebold_mariano,
    max_origins,
    plan_segments,
    run_segment,
    summarize_backtest,
)
from tasks.errors import PipelineError
from tasks.windows import Windows, make_windows
from tests.conftest import synthetic_prices


def windows_of(n: int = 60, seed: int = 3) -> Windows:
    frame = synthetic_prices(n, seed=seed)
    return make_windows(frame["close"].to_numpy(), pd.DatetimeIndex(frame["date"]), 12)


def segment_run(segment, windows, **kw):
    options = {
        "scaling": "window",
        "epochs": 2,
        "warm_epochs": 1,
        "warm_start": True,
        "batch_size": 16,
        "seed": 7,
    }
    options.update(kw)
    return run_segment(segment, windows, **options)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("origins", "refit_every", "keras_segments"),
    [(1, 1, [(47,)]), (4, 1, [(44,), (45,), (46,), (47,)]), (5, 2, [(43, 44), (45, 46), (47,)])],
)
def test_plan_cuts_keras_origins_into_refit_segments(origins, refit_every, keras_segments) -> None:
    windows = windows_of()  # 60 rows → 48 samples
    segments = plan_segments(windows, ("naive", "drift", "gru"), origins, refit_every)
    by_model = {m: [s.origins for s in segments if s.model == m] for m in ("naive", "drift", "gru")}
    assert by_model["gru"] == keras_segments
    every = tuple(range(48 - origins, 48))
    assert by_model["naive"] == by_model["drift"] == [every]  # baselines: one segment
    assert segments[0].first_target == windows.months[48 - origins].strftime("%Y-%m")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("origins", "message"),
    [(0, "at least 1"), (-3, "at least 1"), (41, "at most 40 origins")],
)
def test_plan_rejects_impossible_origins(origins, message) -> None:
    windows = windows_of()
    assert max_origins(len(windows)) == 40
    with pytest.raises(PipelineError, match=message):
        plan_segments(windows, ("naive",), origins, 1)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("warm_start", "fits", "trained"),
    [
        (True, ["scratch", "warm", "warm"], [True, True, True]),
        (False, ["scratch"] + ["reused"] * 2, [True, False, False]),
    ],
)
def test_segment_fits_then_warm_starts_or_reuses(warm_start, fits, trained) -> None:
    windows = windows_of()
    (segment,) = plan_segments(windows, ("lstm",), 3, 3)
    frame = segment_run(segment, windows, warm_start=warm_start)
    assert frame["fit"].tolist() == fits
    assert (frame["train_seconds"] > 0).tolist() == trained
    assert frame["target_month"].tolist() == list(windows.months[-3:])
    assert (frame["origin_month"] == frame["target_month"] - pd.DateOffset(months=1)).all()
    np.testing.assert_array_equal(frame["actual"], windows.y[-3:])


@pytest.mark.unit
@pytest.mark.parametrize("model", ["naive", "drift", "simple_rnn"])
def test_forecast_at_an_origin_never_sees_its_target_or_later(model) -> None:
    windows = windows_of()
    (segment,) = plan_segments(windows, (model,), 1, 1)
    origin = segment.origins[0]  # 47: fitted on samples 0..46, forecasts sample 47
    assert origin == 47
    # Everything from the target month on is replaced: the prediction must not move.
    y = windows.y.copy()
    y[origin:] *= 3.0
    tampered = Windows(X=windows.X, y=y, months=windows.months)
    honest = segment_run(segment, windows)
    leaked = segment_run(segment, tampered)
    assert leaked["predicted"].iloc[0] == pytest.approx(honest["predicted"].iloc[0], rel=1e-6)
    assert leaked["actual"].iloc[0] == pytest.approx(3.0 * honest["actual"].iloc[0])


@pytest.mark.unit
def test_drift_refits_on_each_origins_past() -> None:
    windows = windows_of()
    (segment,) = plan_segments(windows, ("drift",), 2, 1)
    frame = segment_run(segment, windows)
    for row, i in zip(frame.itertuples(), segment.origins, strict=True):
        mean = np.mean(np.log(windows.y[:i] / windows.X[:i, -1]))
        assert row.predicted == pytest.approx(windows.X[i, -1] * np.exp(mean))


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
    results = summarize_backtest([segment_run(s, windows) for s in segments], windows)
    assert len(results.predictions) == 20
    metrics = results.metrics.set_index("model")
    assert set(metrics["split"]) == {"backtest"}
    assert metrics.loc["naive", "theil_u2"] == pytest.approx(1.0)
    naive_rmse = np.sqrt(np.mean((windows.y[-10:] - windows.X[-10:, -1]) ** 2))
    assert metrics.loc["naive", "rmse"] == pytest.approx(naive_rmse)
    assert metrics.loc["drift", "n"] == 10
    (comparison,) = results.comparisons.to_dict("records")
    assert comparison["model"] == "drift"
    assert comparison["baseline"] == "naive"
    assert comparison["n"] == 10
    assert 0.0 <= comparison["dm_pvalue"] <= 1.0
