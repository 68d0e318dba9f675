from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.evaluation.choose import choose_champions
from tasks.evaluation.evaluate import diebold_mariano

pytestmark = pytest.mark.unit

PARAMS = {"naive": 0, "drift": 1, "big_net": 50_000}


def frames(shrink: dict[str, float], n: int = 400, seed: int = 0, noise: float = 3.0):
    """Rolling rows at h = 1 and 2: each model's error is a common error times its ``shrink``,
    plus noise of its own."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("1980-01-01", periods=n, freq="MS")
    base = {h: rng.normal(0, 10, n) for h in (1, 2)}
    rows = []
    for model, factor in shrink.items():
        for h in (1, 2):
            error = base[h] * factor + rng.normal(0, noise, n)
            rows.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "forecast_month": months,
                        "horizon": h,
                        "actual": 1000.0 + base[h],
                        "point": 1000.0 + base[h] - error,
                    }
                )
            )
    predictions = pd.concat(rows, ignore_index=True)
    err = predictions["actual"] - predictions["point"]
    metrics = (
        predictions.assign(sq=err**2)
        .groupby(["model", "horizon"], as_index=False)["sq"]
        .mean()
        .assign(rmse=lambda f: np.sqrt(f["sq"]))
    )
    comparisons = pd.DataFrame(
        columns=["model", "baseline", "split", "horizon", "dm_stat", "dm_pvalue", "n"]
    )
    return predictions, metrics, comparisons


def test_a_big_network_a_hair_better_than_drift_loses_to_drift() -> None:
    # seed 2: big_net's RMSE is 0.8 % and 0.1 % below drift's at h = 1 and 2
    predictions, metrics, comparisons = frames(
        {"naive": 1.3, "drift": 1.0, "big_net": 0.995}, seed=2
    )
    rmse = metrics.set_index(["horizon", "model"])["rmse"]
    assert (rmse.xs("big_net", level="model") < rmse.xs("drift", level="model")).all()
    champions = choose_champions(predictions, metrics, comparisons, PARAMS)
    assert (champions["best_model"] == "big_net").all()  # lowest RMSE …
    assert (champions["model"] == "drift").all()  # … but drift is not significantly worse
    assert champions["kept"].str.startswith("drift").all()
    assert (champions["dm_pvalue_vs_best"] >= 0.10).all()


def test_a_network_significantly_better_is_the_champion() -> None:
    predictions, metrics, comparisons = frames({"naive": 1.3, "drift": 1.0, "big_net": 0.6})
    champions = choose_champions(predictions, metrics, comparisons, PARAMS)
    assert (champions["model"] == "big_net").all()
    assert (champions["kept"] == "big_net").all()
    assert champions["dm_pvalue_vs_best"].isna().all()  # the champion is the best


def test_equal_cost_goes_to_the_lower_rmse() -> None:
    predictions, metrics, comparisons = frames({"naive": 1.0, "drift": 0.999})
    champions = choose_champions(predictions, metrics, comparisons, {"naive": 1, "drift": 1})
    lowest = metrics.loc[metrics.groupby("horizon")["rmse"].idxmin(), "model"].tolist()
    assert champions["model"].tolist() == lowest
    assert (
        champions["kept"].str.contains("naive").all()
        and champions["kept"].str.contains("drift").all()
    )


def test_the_one_sided_pvalue_halves_the_two_sided_one_on_the_worse_side() -> None:
    rng = np.random.default_rng(1)
    best = rng.normal(0, 1, 300)
    worse = best * 1.1 + rng.normal(0, 0.3, 300)
    test = diebold_mariano(worse, best, 3)
    assert test.stat > 0
    assert test.one_sided_pvalue == pytest.approx(test.pvalue / 2)
    assert diebold_mariano(best, worse, 3).one_sided_pvalue == pytest.approx(1 - test.pvalue / 2)
