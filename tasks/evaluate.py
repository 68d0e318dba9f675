"""Test-split accuracy of one model on the original price scale."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.train import TrainedModel
from tasks.windows import Windows


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(np.mean((np.asarray(actual) - np.asarray(predicted)) ** 2)))


def mae(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(np.asarray(actual) - np.asarray(predicted))))


def compute_metrics(
    actual: np.ndarray, predicted: np.ndarray, last: np.ndarray, train_naive_mae: float
) -> dict[str, float | int]:
    """Metrics of one-step forecasts given each target's previous close ``last``.

    ``mape`` is in percent; ``mase`` divides MAE by the naive MAE on the training split;
    ``theil_u2`` divides RMSE by the naive (last-value) RMSE on the same targets;
    ``directional_accuracy`` is the share of targets whose move from ``last`` has the
    predicted sign (a prediction of no move counts as wrong unless the price did not move).
    """
    actual = np.asarray(actual, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    last = np.asarray(last, dtype=np.float64)
    model_rmse = rmse(actual, predicted)
    naive_rmse = rmse(actual, last)
    return {
        "rmse": model_rmse,
        "mae": mae(actual, predicted),
        "mape": float(np.mean(np.abs((actual - predicted) / actual)) * 100.0),
        "mase": mae(actual, predicted) / train_naive_mae if train_naive_mae > 0 else float("nan"),
        "theil_u2": model_rmse / naive_rmse if naive_rmse > 0 else float("nan"),
        "directional_accuracy": float(np.mean(np.sign(predicted - last) == np.sign(actual - last))),
        "n": len(actual),
    }


@dataclass(frozen=True)
class Evaluation:
    """One model's test metrics and its per-month test predictions."""

    model: str
    metrics: dict[str, float | int]
    predictions: pd.DataFrame  # month, actual, predicted


def evaluate(model: TrainedModel, train: Windows, test: Windows) -> Evaluation:
    """Predict every test month with ``model`` and score it against the actual closes."""
    predicted = model.predict(test.X)
    train_naive_mae = mae(train.y, train.last)
    return Evaluation(
        model=model.name,
        metrics=compute_metrics(test.y, predicted, test.last, train_naive_mae),
        predictions=pd.DataFrame({"month": test.months, "actual": test.y, "predicted": predicted}),
    )


def rank_evaluations(evaluations: list[Evaluation]) -> list[dict[str, object]]:
    """Leaderboard rows (rank, model and metrics), lowest test RMSE first."""
    ranked = sorted(evaluations, key=lambda e: e.metrics["rmse"])
    return [{"rank": i, "model": e.model, **e.metrics} for i, e in enumerate(ranked, start=1)]


@task(name="evaluate_model", task_run_name="evaluate-{model.name}", cache_policy=NO_CACHE)
def evaluate_model(model: TrainedModel, train: Windows, test: Windows) -> Evaluation:
    """Score one model on the test split."""
    result = evaluate(model, train, test)
    m = result.metrics
    get_run_logger().info(
        "%s: test rmse %.1f, mae %.1f, mase %.3f, theil_u2 %.3f",
        model.name,
        m["rmse"],
        m["mae"],
        m["mase"],
        m["theil_u2"],
    )
    return result
