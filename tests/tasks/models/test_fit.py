from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.data.windows import make_windows
from tasks.evaluation.rolling import plan_rolling, rolling_forecasts, rolling_frame
from tasks.models.fit import OriginModels, fit_every_role, fit_origins
from tests.conftest import synthetic_prices

FIT = {"scaling": "window", "epochs": 1, "batch_size": 16, "seed": 3}


def windows_of(frame: pd.DataFrame, window: int = 12):
    return make_windows(frame["close"].to_numpy(), pd.DatetimeIndex(frame["date"]), window)


@pytest.mark.slow
def test_one_stacked_fit_holds_both_ensembles_and_every_origin(tmp_path) -> None:
    windows = windows_of(synthetic_prices(120, start="1980-01-01"))
    plan = plan_rolling(windows, "1985-01", 12, 3)
    fits = fit_every_role("gru", windows, 80, plan.cuts, seeds=2, artifact_dir=tmp_path, **FIT)
    assert (fits.evaluation.role, fits.forecast.role) == ("evaluation", "forecast")
    assert fits.evaluation.trained_through == windows.months[79]
    assert fits.forecast.trained_through == windows.months[-1]
    assert fits.evaluation.seeds == fits.forecast.seeds == (3, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"gru-{role}-seed{s}.keras" for role in ("evaluation", "forecast") for s in (3, 4)
    ]
    # the two ensembles learnt different data; the rolling paths cover the plan
    last = windows.X[-1:]
    assert not np.allclose(fits.evaluation.predict(last), fits.forecast.predict(last))
    naive, _ = rolling_forecasts("naive", windows, plan, **FIT)
    keys = ["forecast_month", "horizon", "target_month", "actual"]
    rolling = rolling_frame("gru", windows, plan, fits.origins)
    pd.testing.assert_frame_equal(rolling[keys], naive[keys])
    assert np.isfinite(rolling["point"]).all()
    assert fits.evaluation.train_seconds == pytest.approx(fits.forecast.train_seconds)


@pytest.mark.unit
def test_a_baselines_origins_are_one_fit_each() -> None:
    windows = windows_of(synthetic_prices(120, start="1980-01-01"))
    origins, seconds = fit_origins("drift", windows, (40, 60, 80), **FIT)
    assert origins.stacked is None and len(origins.baselines) == 3 and seconds >= 0
    # each origin learnt only its own windows: later origins saw more of the trend
    paths = origins.paths([windows.X[-1:]] * 3, 2)
    assert len(paths) == 3 and all(p.shape == (1, 2) for p in paths)
    assert OriginModels().stacked is None


@pytest.mark.unit
def test_an_unknown_model_fails_before_fitting() -> None:
    windows = windows_of(synthetic_prices(60, start="1980-01-01"))
    with pytest.raises(ValueError, match="unknown model 'prophet'"):
        fit_origins("prophet", windows, (40,), **FIT)
