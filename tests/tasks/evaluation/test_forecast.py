from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.data.windows import Windows, fit_scaler, make_windows, split_chronologically
from tasks.evaluation.evaluate import evaluate, horizon_predictions
from tasks.evaluation.forecast import forecast_path
from tasks.models.registry import recursive_paths
from tasks.models.train import combine_fits, fit_model


def random_walk(n: int, seed: int, drift: float = 0.006) -> tuple[np.ndarray, pd.DatetimeIndex]:
    close = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(drift, 0.04, n)))
    return close, pd.date_range("1960-01-01", periods=n, freq="MS")


def split(close: np.ndarray, months: pd.DatetimeIndex) -> tuple[Windows, Windows]:
    return split_chronologically(make_windows(close, months, 12), 0.2)


def fitted(name: str, train: Windows, **options):
    scaler = fit_scaler("window", train)
    settings = {"epochs": 1, "batch_size": 16, "seed": 3, **options}
    return fit_model(name, train, scaler, **settings)


@pytest.mark.unit
def test_each_step_sees_the_previous_forecasts_not_the_data() -> None:
    # predict = the window's mean: [1, 2, 3] → 2; then [2, 3, 2] → 7/3; then [3, 2, 7/3] → 22/9
    paths = recursive_paths(lambda X: X.mean(axis=1), np.array([[1.0, 2.0, 3.0]]), 3)
    np.testing.assert_allclose(paths, [[2.0, 7 / 3, 22 / 9]])


@pytest.mark.unit
@pytest.mark.parametrize("horizon", [0, -1])
def test_a_horizon_below_one_is_refused(horizon) -> None:
    with pytest.raises(ValueError, match="horizon must be at least 1"):
        recursive_paths(lambda X: X[:, -1], np.ones((1, 3)), horizon)


@pytest.mark.unit
def test_naive_stays_flat_and_drift_compounds() -> None:
    train, test = split(*random_walk(120, seed=1))
    naive = recursive_paths(fitted("naive", train).predict, test.X, 12)
    np.testing.assert_array_equal(naive, np.repeat(test.last[:, None], 12, axis=1))
    drift = fitted("drift", train)
    mu = drift.forecaster.mean_log_return
    paths = recursive_paths(drift.predict, test.X, 12)
    np.testing.assert_allclose(paths, test.last[:, None] * np.exp(mu * np.arange(1, 13)))


@pytest.mark.unit
def test_h_step_forecasts_line_up_with_their_targets() -> None:
    train, test = split(*random_walk(120, seed=2))
    steps = horizon_predictions(fitted("naive", train).paths, test, 4)
    for h in range(1, 5):
        rows = steps[steps["horizon"] == h]
        assert len(rows) == len(test) - h + 1  # origins whose target month is in the split
        np.testing.assert_array_equal(rows["predicted"], test.last[: len(rows)])
        np.testing.assert_array_equal(rows["actual"], test.y[h - 1 :])
        assert list(rows["month"]) == list(test.months[h - 1 :])


@pytest.mark.unit
def test_naive_h_step_errors_grow_with_h() -> None:
    # a sanity check of the machinery: a random walk's h-step errors grow like sqrt(h)
    train, test = split(*random_walk(900, seed=3))
    result = evaluate(fitted("naive", train), train, test, horizon=12)
    by_h = result.horizon_metrics.set_index("horizon")
    assert list(by_h.index) == list(range(1, 13))
    assert by_h.loc[1, "rmse"] == pytest.approx(result.metrics["rmse"])
    assert (by_h["theil_u2"] == 1.0).all()
    rmse = by_h["rmse"].loc[[1, 2, 4, 8, 12]]
    assert rmse.is_monotonic_increasing and rmse.is_unique
    assert rmse.loc[12] > 2 * rmse.loc[1]


@pytest.mark.unit
def test_a_horizon_beyond_the_test_split_is_refused() -> None:
    train, test = split(*random_walk(40, seed=4))  # 28 windows: 6 test samples
    naive = fitted("naive", train)
    assert len(evaluate(naive, train, test, horizon=6).horizon_metrics) == 6
    with pytest.raises(ValueError, match="6 test samples hold no 7-month-ahead target"):
        evaluate(naive, train, test, horizon=7)


def naive_forecast(n: int, seed: int, evaluated: int, horizon: int):
    """Naive evaluated up to ``evaluated`` months ahead, then forecast ``horizon`` months."""
    close, months = random_walk(n, seed=seed)
    train, test = split(close, months)
    naive = fitted("naive", train)
    evaluation = evaluate(naive, train, test, horizon=evaluated)
    return close, months, forecast_path(naive, close[-12:], months[-1], evaluation, horizon)


@pytest.mark.unit
def test_the_forecast_covers_the_next_months_with_bands_that_widen() -> None:
    close, months, path = naive_forecast(300, seed=5, evaluated=12, horizon=12)
    assert [f.horizon for f in path] == list(range(1, 13))
    assert [f.target_month for f in path] == [
        months[-1] + pd.offsets.MonthBegin(h) for h in range(1, 13)
    ]
    assert {f.point for f in path} == {close[-1]}
    width = [np.log(f.upper_95 / f.lower_95) for f in path]
    assert width[-1] > 2 * width[0]
    for f in path:
        assert f.lower_95 <= f.lower_80 <= f.upper_80 <= f.upper_95


@pytest.mark.unit
def test_a_forecast_further_ahead_than_the_evaluation_is_refused() -> None:
    assert len(naive_forecast(120, seed=7, evaluated=3, horizon=3)[2]) == 3
    with pytest.raises(ValueError, match="evaluated up to 3 months ahead, so it has no 4-month"):
        naive_forecast(120, seed=7, evaluated=3, horizon=4)


def tripled_from(close: np.ndarray, months: pd.DatetimeIndex, month: pd.Timestamp) -> np.ndarray:
    tampered = close.copy()
    tampered[months >= month] *= 3.0
    return tampered


@pytest.mark.slow
@pytest.mark.parametrize("name", ["drift", "gru"])
def test_a_forecast_for_t_plus_h_sees_no_price_after_t(name) -> None:
    close, months = random_walk(100, seed=6)
    train, test = split(close, months)
    model = fitted(name, train, epochs=2, seeds=2)  # gru: an ensemble feeding back its mean
    origin = 5  # test window 5 ends at month T; its h-step forecast is of T+h
    after_t = test.months[origin]  # T+1: every price from here on is tripled
    _, tampered = split(tripled_from(close, months, after_t), months)
    np.testing.assert_array_equal(tampered.X[origin], test.X[origin])
    honest = horizon_predictions(model.paths, test, 6)
    leaked = horizon_predictions(model.paths, tampered, 6)
    at_origin = [
        (honest["month"] == test.months[origin + h - 1]) & (honest["horizon"] == h)
        for h in range(1, 7)
    ]
    for h, rows in enumerate(at_origin, start=1):
        assert leaked.loc[rows, "predicted"].item() == honest.loc[rows, "predicted"].item(), h
        assert leaked.loc[rows, "actual"].item() == pytest.approx(
            3 * honest.loc[rows, "actual"].item()
        )
    # the next origin's window holds a tripled month, so its forecasts move: the tampering is real
    later = (honest["month"] == test.months[origin + 1]) & (honest["horizon"] == 1)
    assert leaked.loc[later, "predicted"].item() != pytest.approx(
        honest.loc[later, "predicted"].item()
    )


@pytest.mark.unit
def test_mean_forecasts_the_mean_of_its_components_paths_at_every_horizon() -> None:
    train, test = split(*random_walk(120, seed=8))
    parts = [fitted("naive", train), fitted("drift", train)]
    mean = combine_fits("mean", parts)
    paths = mean.paths(test.X, 6)
    expected = (parts[0].paths(test.X, 6) + parts[1].paths(test.X, 6)) / 2
    np.testing.assert_allclose(paths, expected, rtol=1e-12)
    # not a recursion on the mean: that would compound half the drift from step 2 on
    recursed = recursive_paths(mean.predict, test.X, 6)
    assert not np.allclose(paths[:, 1:], recursed[:, 1:], rtol=1e-9)
    np.testing.assert_allclose(paths[:, 0], recursed[:, 0], rtol=1e-12)
    scored = evaluate(mean, train, test, horizon=6)
    assert scored.seed_metrics.empty and mean.seeds == ()
    assert mean.n_params == sum(p.n_params for p in parts) == 1  # naive 0 + drift 1


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "roles", "message"),
    [
        ("drift", ("evaluation",), "not a combination"),
        ("mean", (), "at least one"),
        ("mean", ("evaluation", "forecast"), "differ in role"),
    ],
)
def test_mean_refuses_what_it_cannot_combine(name: str, roles: tuple, message: str) -> None:
    train, _ = split(*random_walk(80, seed=9))
    parts = [fitted("drift", train, role=role) for role in roles]
    with pytest.raises(ValueError, match=message):
        combine_fits(name, parts)


@pytest.mark.unit
def test_mean_is_never_fitted_on_its_own() -> None:
    train, _ = split(*random_walk(80, seed=9))
    with pytest.raises(ValueError, match="not fitted"):
        fitted("mean", train)
