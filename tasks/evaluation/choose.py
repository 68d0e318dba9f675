"""One verdict per horizon, the lesson's way: the cheapest model that is not worse than the best.

At each horizon h of the rolling evaluation:

1. the *best* model has the lowest rolling RMSE;
2. a model is *kept* unless the one-sided Diebold-Mariano test (squared errors,
   autocovariances to lag h - 1, Harvey-Leybourne-Newbold correction, Student t with n - 1
   degrees of freedom) says its squared errors are larger than the best's at
   ``SIGNIFICANCE``;
3. the *champion* is the kept model with the fewest trainable parameters (naive 0, drift 1,
   a network its Keras count, ``mean`` the sum of its parts); ties go to the lower RMSE.

A model a few tenths of an RMSE point ahead of a cheaper one is not enough to crown it:
only a difference the fifty years can tell apart is. Every output of a run (the CLI, the
artifact, ``sp500 report``, the PNG, the events and the ``champions`` view) reads this one
verdict.
"""

from __future__ import annotations

import math

import pandas as pd

from tasks.evaluation.evaluate import diebold_mariano
from warehouse.store import TABLE_COLUMNS

SIGNIFICANCE = 0.10  # one-sided: "worse than the best" at 10 %
CHAMPION_COLUMNS = TABLE_COLUMNS["rolling_champions"]


def worse_than_best_pvalue(model_errors: pd.Series, best_errors: pd.Series, horizon: int) -> float:
    """One-sided DM p-value of "``model`` has larger squared errors than ``best``".

    Errors are paired on their index (the forecast month); NaN when the test is undefined
    (fewer than two common months, or a constant loss differential).
    """
    common = model_errors.index.intersection(best_errors.index)
    test = diebold_mariano(
        model_errors.loc[common].to_numpy(), best_errors.loc[common].to_numpy(), horizon
    )
    return test.one_sided_pvalue


def choose_champions(
    predictions: pd.DataFrame,
    metrics: pd.DataFrame,
    comparisons: pd.DataFrame,
    n_params: dict[str, int],
) -> pd.DataFrame:
    """The champion of every horizon by the rule above.

    Args:
        predictions: rolling forecasts, ``model, forecast_month, horizon, point, actual``.
        metrics: ``rolling_metrics`` rows (``model, horizon, rmse``).
        comparisons: the rolling DM tests; the champion's p-value against naive comes from
            them (``dm_pvalue``, NaN for naive or without naive).
        n_params: trainable parameters per model (a model missing from it counts as the
            most expensive, so it only wins where nothing cheaper is kept).

    Returns:
        One row per horizon: ``horizon, model, rmse, dm_pvalue, best_model, kept,
        dm_pvalue_vs_best`` (``kept``: the kept models, comma-separated, cheapest first;
        ``dm_pvalue_vs_best``: the champion's one-sided p-value against the best, NaN when
        the champion is the best).
    """
    against_naive = comparisons[
        (comparisons["baseline"] == "naive") & (comparisons["split"] == "rolling")
    ].set_index(["model", "horizon"])["dm_pvalue"]
    errors = predictions.assign(error=predictions["actual"] - predictions["point"])
    rows = []
    for h, group in metrics.groupby("horizon", sort=True):
        horizon = int(h)
        at_h = errors[errors["horizon"] == horizon]
        by_model = {
            str(m): g.set_index("forecast_month")["error"] for m, g in at_h.groupby("model")
        }
        best = group.loc[group["rmse"].idxmin()]
        best_model = str(best["model"])
        candidates = []
        for row in group.itertuples(index=False):
            model = str(row.model)
            pvalue = (
                math.nan
                if model == best_model
                else worse_than_best_pvalue(by_model[model], by_model[best_model], horizon)
            )
            if math.isnan(pvalue) or pvalue >= SIGNIFICANCE:
                cost = n_params.get(model, math.inf)
                candidates.append((cost, float(row.rmse), model, pvalue))
        candidates.sort()
        cost, rmse, champion, pvalue = candidates[0]
        rows.append(
            {
                "horizon": horizon,
                "model": champion,
                "rmse": rmse,
                "dm_pvalue": against_naive.get((champion, horizon), math.nan),
                "best_model": best_model,
                "kept": ",".join(c[2] for c in candidates),
                "dm_pvalue_vs_best": pvalue,
            }
        )
    return pd.DataFrame(rows, columns=CHAMPION_COLUMNS)
