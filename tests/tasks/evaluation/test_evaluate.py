from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.data.windows import fit_scaler, make_windows, split_chronologically
from tasks.evaluation.evaluate import (
    SEED_METRIC_COLUMNS,
    Evaluation,
    compare_models,
    comparison_pairs,
    compute_metrics,
    diebold_mariano,
    evaluate,
    rank_evaluations,
)
from tasks.evaluation.forecast import forecast_path, interval_bounds
from tasks.models.train import fit_model

pytestmark = pytest.mark.unit


def test_metrics_against_hand_computed_values() -> None:
    actual = np.array([110.0, 100.0, 120.0, 120.0])
    predicted = np.array([100.0, 105.0, 120.0, 110.0])
    last = np.array([100.0, 110.0, 100.0, 125.0])
    m = compute_metrics(actual, predicted, last, train_naive_mae=5.0)
    # errors 10, -5, 0, 10
    assert m["rmse"] == pytest.approx(np.sqrt((100 + 25 + 0 + 100) / 4))  # 7.5
    assert m["mae"] == pytest.approx(25 / 4)
    assert m["mape"] == pytest.approx(100 * (10 / 110 + 5 / 100 + 0 + 10 / 120) / 4)
    assert m["mase"] == pytest.approx((25 / 4) / 5.0)
    naive_rmse = np.sqrt((100 + 100 + 400 + 25) / 4)  # 12.5
    assert m["theil_u2"] == pytest.approx(7.5 / naive_rmse)
    # moves: actual +10, -10, +20, -5; predicted 0, -5, +20, -15 → right on 3 of 4
    assert m["directional_accuracy"] == pytest.approx(0.75)
    assert m["n"] == 4


def test_naive_scores_theil_u2_of_one() -> None:
    actual = np.array([1.0, 2.0, 3.0])
    last = np.array([2.0, 1.0, 2.5])
    m = compute_metrics(actual, last, last, 1.0)
    assert m["theil_u2"] == pytest.approx(1.0)
    assert m["directional_accuracy"] == 0.0


def test_interval_bounds_from_relative_residual_quantiles() -> None:
    actual = np.exp(np.linspace(-0.1, 0.1, 201)) * 100
    predicted = np.full(201, 100.0)
    bounds = interval_bounds(1000.0, actual, predicted)
    assert bounds["lower_95"] == pytest.approx(1000 * np.exp(-0.095), rel=1e-6)
    assert bounds["upper_80"] == pytest.approx(1000 * np.exp(0.08), rel=1e-6)
    assert bounds["lower_95"] < bounds["lower_80"] < 1000 < bounds["upper_80"] < bounds["upper_95"]


def test_evaluate_and_forecast_baselines_end_to_end() -> None:
    close = 100 * np.exp(np.cumsum(np.random.default_rng(4).normal(0.01, 0.03, 80)))
    months = pd.date_range("2000-01-01", periods=80, freq="MS")
    train, test = split_chronologically(make_windows(close, months, 12), 0.2)
    scaler = fit_scaler("window", train)
    naive = fit_model("naive", train, scaler, epochs=1, batch_size=8, seed=0)
    result = evaluate(naive, train, test)
    assert result.metrics["theil_u2"] == pytest.approx(1.0)
    np.testing.assert_array_equal(result.predictions["predicted"], test.X[:, -1])
    (forecast,) = forecast_path(naive, close[-12:], months[-1], result)
    assert (forecast.point, forecast.horizon) == (close[-1], 1)
    assert forecast.target_month == pd.Timestamp("2006-09-01")
    assert forecast.lower_95 <= forecast.lower_80 <= forecast.point <= forecast.upper_80


def _evaluation(model: str, predicted: np.ndarray, actual: np.ndarray) -> Evaluation:
    months = pd.date_range("2010-01-01", periods=len(actual), freq="MS")
    frame = pd.DataFrame({"month": months, "actual": actual, "predicted": predicted})
    return Evaluation(model, {"rmse": 1.0}, frame, pd.DataFrame(columns=SEED_METRIC_COLUMNS))


def test_models_are_tested_against_naive_over_the_same_months() -> None:
    rng = np.random.default_rng(5)
    actual = 100 + np.cumsum(rng.normal(0, 1, 40))
    naive = np.r_[100.0, actual[:-1]]
    evaluations = [
        _evaluation("naive", naive, actual),
        _evaluation("close", actual + rng.normal(0, 0.1, 40), actual),
        _evaluation("same", naive, actual),
    ]
    result = compare_models(evaluations).set_index("model")
    assert list(result.index) == ["close", "same"]
    assert set(result["split"]) == {"test"} and set(result["baseline"]) == {"naive"}
    expected = diebold_mariano(
        actual - evaluations[1].predictions["predicted"].to_numpy(), actual - naive
    )
    assert result.loc["close", "dm_stat"] == pytest.approx(expected.stat)
    assert result.loc["close", "dm_pvalue"] < 0.01
    assert np.isnan(result.loc["same", "dm_pvalue"])  # identical errors: undefined
    assert compare_models(evaluations[1:]).empty  # no naive, nothing to compare


def test_the_leaderboard_shows_each_seeds_spread() -> None:
    actual = np.linspace(100, 140, 30)
    members = pd.DataFrame(
        {"seed": [1, 2, 3], "rmse": [2.0, 3.0, 7.0], "mae": [1.0] * 3, "theil_u2": [0.9] * 3}
    )
    ensemble = Evaluation(
        "gru", {"rmse": 2.5}, _evaluation("gru", actual, actual).predictions, members
    )
    naive = _evaluation("naive", actual, actual)
    naive = Evaluation("naive", {"rmse": 3.0}, naive.predictions, naive.seed_metrics)
    comparisons = pd.DataFrame(
        [
            {
                "model": "gru",
                "baseline": "naive",
                "split": "test",
                "dm_stat": -2.0,
                "dm_pvalue": 0.04,
                "n": 30,
            }
        ]
    )
    first, second = rank_evaluations([naive, ensemble], comparisons)
    assert (first["model"], first["seeds"], first["rmse_min"], first["rmse_max"]) == (
        "gru",
        3,
        2.0,
        7.0,
    )
    assert first["rmse_std"] == pytest.approx(np.std([2.0, 3.0, 7.0], ddof=1))
    assert first["dm_pvalue"] == 0.04
    assert second["model"] == "naive" and second["seeds"] == 0
    assert np.isnan(second["rmse_std"]) and np.isnan(second["dm_pvalue"])


def test_due_diligence_pairs() -> None:
    models = ["naive", "drift", "lstm", "conv1d_lstm", "conv1d_lstm[filters=64,kernel_size=5]"]
    assert comparison_pairs(models) == [
        ("drift", "naive"),
        ("lstm", "naive"),
        ("conv1d_lstm", "naive"),
        ("conv1d_lstm[filters=64,kernel_size=5]", "naive"),
        ("lstm", "drift"),
        ("conv1d_lstm", "drift"),
        ("conv1d_lstm[filters=64,kernel_size=5]", "drift"),
        ("conv1d_lstm", "lstm"),
        ("conv1d_lstm[filters=64,kernel_size=5]", "conv1d_lstm"),
    ]
    # only the pairs whose both sides ran
    assert comparison_pairs(["lstm[units=64]", "gru"]) == []
    assert comparison_pairs(["lstm[units=64]", "lstm"]) == [("lstm[units=64]", "lstm")]
