"""Test-split accuracy of one model on the original price scale."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from scipy import stats

from tasks.data.windows import Windows
from tasks.models.train import TrainedModel


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
class DieboldMariano:
    """Diebold-Mariano test of equal squared error, with the HLN small-sample correction."""

    stat: float  # negative: the model's squared errors are smaller than the baseline's
    pvalue: float  # two-sided, Student t with n - 1 degrees of freedom
    n: int

    @property
    def one_sided_pvalue(self) -> float:
        """P-value of "the model's squared errors are larger than the baseline's" (NaN if none)."""
        if math.isnan(self.stat):
            return math.nan
        return float(stats.t.sf(self.stat, df=self.n - 1))


def diebold_mariano(
    model_errors: np.ndarray, baseline_errors: np.ndarray, horizon: int = 1
) -> DieboldMariano:
    """Compare two forecasts' errors on the same targets (loss: squared error).

    The statistic uses the loss differential's autocovariances up to lag ``horizon - 1``,
    is scaled by Harvey, Leybourne and Newbold's (1997) factor and referred to Student t
    with n - 1 degrees of freedom. It is NaN when n < 2 or the differential is constant.
    """
    e1 = np.asarray(model_errors, dtype=np.float64)
    e2 = np.asarray(baseline_errors, dtype=np.float64)
    if e1.shape != e2.shape or e1.ndim != 1:
        raise ValueError("error arrays must be one-dimensional and of equal length")
    d = e1**2 - e2**2
    n = len(d)
    if n < 2 or horizon < 1 or horizon >= n:
        return DieboldMariano(math.nan, math.nan, n)
    centred = d - d.mean()
    autocov = [float(np.dot(centred[k:], centred[: n - k]) / n) for k in range(horizon)]
    variance = (autocov[0] + 2.0 * sum(autocov[1:])) / n
    if not variance > 0.0:
        return DieboldMariano(math.nan, math.nan, n)
    dm = float(d.mean()) / math.sqrt(variance)
    hln = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    stat = dm * hln
    return DieboldMariano(stat, float(2.0 * stats.t.sf(abs(stat), df=n - 1)), n)


HORIZON_COLUMNS = ["horizon", "month", "actual", "predicted", "last"]


def horizon_predictions(
    paths: Callable[[np.ndarray, int], np.ndarray], test: Windows, horizon: int
) -> pd.DataFrame:
    """Every h-step forecast (h = 1 … ``horizon``) from the test windows whose target is known.

    Test window i ends the month before target i, so its h-step forecast is of target
    i + h - 1: n - h + 1 forecasts at horizon h. ``last`` is the window's last close (the
    naive forecast at every horizon).
    """
    predicted = paths(test.X, horizon)
    frames = []
    for h in range(1, horizon + 1):
        origins = np.arange(len(test) - h + 1)
        frames.append(
            pd.DataFrame(
                {
                    "horizon": h,
                    "month": test.months[origins + h - 1],
                    "actual": test.y[origins + h - 1],
                    "predicted": predicted[origins, h - 1],
                    "last": test.last[origins],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[HORIZON_COLUMNS]


HORIZON_METRIC_COLUMNS = ["horizon", "rmse", "mae", "theil_u2", "n"]


def horizon_metrics(steps: pd.DataFrame) -> pd.DataFrame:
    """RMSE, MAE and theil_u2 (against naive's flat path) at each horizon of ``steps``."""
    rows = []
    for h, group in steps.groupby("horizon", sort=True):
        model_rmse = rmse(group["actual"], group["predicted"])
        naive_rmse = rmse(group["actual"], group["last"])
        rows.append(
            {
                "horizon": int(h),
                "rmse": model_rmse,
                "mae": mae(group["actual"], group["predicted"]),
                "theil_u2": model_rmse / naive_rmse if naive_rmse > 0 else math.nan,
                "n": len(group),
            }
        )
    return pd.DataFrame(rows, columns=HORIZON_METRIC_COLUMNS)


@dataclass(frozen=True)
class Evaluation:
    """One model's test metrics, its per-month test predictions, and each member's scores.

    ``steps`` holds the recursive h-step forecasts of ``horizon_predictions`` (horizon 1
    repeats ``predictions``); ``horizon_metrics`` scores them per horizon.
    """

    model: str
    metrics: dict[str, float | int]
    predictions: pd.DataFrame  # month, actual, predicted (the ensemble's)
    seed_metrics: pd.DataFrame  # seed, rmse, mae, theil_u2 (one row per member)
    steps: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=HORIZON_COLUMNS))

    @property
    def horizon_metrics(self) -> pd.DataFrame:
        """Test RMSE, MAE and theil_u2 of the recursive forecasts at each horizon."""
        return horizon_metrics(self.steps)

    def step_errors(self, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Actual and predicted closes of the h-step test forecasts, h = ``horizon``.

        Raises:
            ValueError: this evaluation holds no forecasts ``horizon`` months ahead.
        """
        rows = self.steps[self.steps["horizon"] == horizon]
        if rows.empty:
            evaluated = int(self.steps["horizon"].max()) if len(self.steps) else 0
            raise ValueError(
                f"{self.model} was evaluated up to {evaluated} months ahead, so it has no"
                f" {horizon}-month test errors to size bands with"
            )
        return rows["actual"].to_numpy(), rows["predicted"].to_numpy()


SEED_METRIC_COLUMNS = ["seed", "rmse", "mae", "theil_u2"]


def evaluate(model: TrainedModel, train: Windows, test: Windows, horizon: int = 1) -> Evaluation:
    """Predict every test month with ``model`` and score it against the actual closes.

    Also forecasts recursively up to ``horizon`` months from each test window (``steps``).

    Raises:
        ValueError: the test split is too short for ``horizon`` (no h-step target is known).
    """
    if len(test) < horizon:
        raise ValueError(
            f"{len(test)} test samples hold no {horizon}-month-ahead target; "
            f"use a shorter horizon or more data"
        )
    steps = horizon_predictions(model.paths, test, horizon)  # the model's own rule
    predicted = steps.loc[steps["horizon"] == 1, "predicted"].to_numpy()  # = predict(test.X)
    members = model.member_predictions(test.X)
    train_naive_mae = mae(train.y, train.last)
    per_seed = []
    for k, seed in enumerate(model.seeds):
        m = compute_metrics(test.y, members[:, k], test.last, train_naive_mae)
        per_seed.append(
            {"seed": seed, "rmse": m["rmse"], "mae": m["mae"], "theil_u2": m["theil_u2"]}
        )
    return Evaluation(
        model=model.name,
        metrics=compute_metrics(test.y, predicted, test.last, train_naive_mae),
        predictions=pd.DataFrame({"month": test.months, "actual": test.y, "predicted": predicted}),
        seed_metrics=pd.DataFrame(per_seed, columns=SEED_METRIC_COLUMNS),
        steps=steps,
    )


def rank_evaluations(
    evaluations: list[Evaluation], comparisons: pd.DataFrame | None = None
) -> list[dict[str, object]]:
    """Leaderboard rows, lowest test RMSE first: rank, model, metrics, spread, test vs naive.

    ``seeds``, ``rmse_std``, ``rmse_min`` and ``rmse_max`` describe the members' own test
    RMSEs (``seeds`` 0 and the rest NaN for a baseline; ``rmse_std`` NaN for one seed);
    ``dm_stat`` and ``dm_pvalue`` come from ``comparisons`` (NaN for naive).
    """
    tests = {}
    if comparisons is not None and len(comparisons):
        against_naive = comparisons[comparisons["baseline"] == "naive"]
        tests = against_naive.set_index("model")[["dm_stat", "dm_pvalue"]].to_dict("index")
    ranked = sorted(evaluations, key=lambda e: e.metrics["rmse"])
    rows = []
    for i, e in enumerate(ranked, start=1):
        rmse = e.seed_metrics["rmse"]
        test = tests.get(e.model, {"dm_stat": math.nan, "dm_pvalue": math.nan})
        rows.append(
            {
                "rank": i,
                "model": e.model,
                **e.metrics,
                "seeds": len(rmse),
                "rmse_std": float(rmse.std(ddof=1)) if len(rmse) > 1 else math.nan,
                "rmse_min": float(rmse.min()) if len(rmse) else math.nan,
                "rmse_max": float(rmse.max()) if len(rmse) else math.nan,
                **test,
            }
        )
    return rows


COMPARISON_COLUMNS = ["model", "baseline", "split", "horizon", "dm_stat", "dm_pvalue", "n"]
BASELINES = ("naive", "drift")


def comparison_pairs(models: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """The (model, baseline) pairs the due diligence tests, among the models present.

    Every model against ``naive``; every model but the two baselines against ``drift``
    (drift against naive is already there); ``conv1d_lstm`` against ``lstm`` (does the
    convolution earn its place?); and each variant against its base network, e.g.
    ``conv1d_lstm[filters=64]`` against ``conv1d_lstm``.
    """
    present = set(models)
    pairs = [(m, "naive") for m in models if m != "naive" and "naive" in present]
    pairs += [(m, "drift") for m in models if m not in BASELINES and "drift" in present]
    if {"conv1d_lstm", "lstm"} <= present:
        pairs.append(("conv1d_lstm", "lstm"))
    for m in models:
        base = m.split("[", 1)[0]
        if base != m and base in present:
            pairs.append((m, base))
    return pairs


def compare_errors(errors: dict[str, pd.Series], split: str, horizon: int = 1) -> pd.DataFrame:
    """Diebold-Mariano test of every pair of ``comparison_pairs`` over their common months.

    ``errors`` maps each model to its ``horizon``-step forecast errors indexed by month
    (autocovariances up to lag ``horizon - 1``).
    """
    rows = []
    for model, baseline in comparison_pairs(list(errors)):
        common = errors[model].index.intersection(errors[baseline].index)
        test = diebold_mariano(
            errors[model].loc[common].to_numpy(),
            errors[baseline].loc[common].to_numpy(),
            horizon=horizon,
        )
        rows.append(
            {
                "model": model,
                "baseline": baseline,
                "split": split,
                "horizon": horizon,
                "dm_stat": test.stat,
                "dm_pvalue": test.pvalue,
                "n": test.n,
            }
        )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def compare_models(evaluations: list[Evaluation], split: str = "test") -> pd.DataFrame:
    """The due diligence of ``comparison_pairs`` over the test months."""
    errors = {
        e.model: (e.predictions["actual"] - e.predictions["predicted"]).set_axis(
            e.predictions["month"].to_numpy()
        )
        for e in evaluations
    }
    return compare_errors(errors, split)


@task(name="evaluate_model", task_run_name="evaluate-{model.name}", cache_policy=NO_CACHE)
def evaluate_model(
    model: TrainedModel, train: Windows, test: Windows, horizon: int = 1
) -> Evaluation:
    """Score one model (its ensemble, and each member) on the test split, up to ``horizon``."""
    result = evaluate(model, train, test, horizon)
    m = result.metrics
    spread = ""
    if len(result.seed_metrics) > 1:
        r = result.seed_metrics["rmse"]
        spread = f" ({len(r)} seeds: {r.min():.1f} … {r.max():.1f})"
    get_run_logger().info(
        "%s: test rmse %.1f%s, mae %.1f, mase %.3f, theil_u2 %.3f",
        model.name,
        m["rmse"],
        spread,
        m["mae"],
        m["mase"],
        m["theil_u2"],
    )
    if horizon > 1:
        far = result.horizon_metrics.iloc[-1]
        get_run_logger().info(
            "%s: %d-month-ahead test rmse %.1f, theil_u2 %.3f (n = %d)",
            model.name,
            horizon,
            far["rmse"],
            far["theil_u2"],
            far["n"],
        )
    return result


@task(name="compare_models", cache_policy=NO_CACHE)
def compare_models_task(evaluations: list[Evaluation]) -> pd.DataFrame:
    """Diebold-Mariano tests of the due-diligence pairs over the test months."""
    result = compare_models(evaluations)
    for row in result.itertuples(index=False):
        get_run_logger().info("%s vs %s: DM p = %.3f", row.model, row.baseline, row.dm_pvalue)
    return result
