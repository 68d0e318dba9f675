from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import ALL_MODELS, Settings, mean_components

pytestmark = pytest.mark.unit


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("SP500_SOURCE", "SP500_WAREHOUSE", "SP500_MODELS", "SP500_EPOCHS"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings()
    assert settings.source == ("https://datatweets.com/datasets/sp500_monthly.csv",)
    assert settings.warehouse == Path("warehouse/sp500.duckdb")
    assert settings.models == ALL_MODELS
    assert (settings.epochs, settings.window, settings.test_fraction) == (60, 12, 0.2)
    assert settings.models_dir == Path("warehouse/models")


def test_horizon_defaults_to_twelve_months_and_reads_the_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SP500_HORIZON", raising=False)
    assert Settings().horizon == 12
    monkeypatch.setenv("SP500_HORIZON", "3")
    settings = Settings()
    assert settings.horizon == 3
    assert settings.run_params()["horizon"] == 3
    assert "horizon" not in settings.backtest_params()  # a backtest forecasts one month


def test_env_then_cli_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SP500_MODELS", "naive, lstm")
    monkeypatch.setenv("SP500_EPOCHS", "5")
    assert Settings().models == ("naive", "lstm")
    assert Settings(epochs=7).epochs == 7


@pytest.mark.parametrize(
    "overrides",
    [
        {"models": "naive,prophet"},
        {"models": "naive,naive"},
        {"models": ""},
        {"models": "naive,mean"},  # mean has nothing to average
        {"models": "mean"},
        {"epochs": 0},
        {"test_fraction": 1.0},
        {"scaling": "zscore"},
        {"window": 1},
        {"horizon": 0},
        {"horizon": 25},
        {"source": ""},
        {"source": "   "},
        {"source": ("a.csv#date=Date&close=SP500",)},  # unknown mapping key
        {"source": "a.csv#date="},
    ],
)
def test_bad_settings_are_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**overrides)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("models", "parts"),
    [
        ("naive,drift,gru,mean", ["drift", "gru"]),
        ("mean,lstm[units=64],naive", ["lstm[units=64]"]),
        ("drift,mean", ["drift"]),
    ],
)
def test_mean_averages_the_networks_and_drift(models: str, parts: list[str]) -> None:
    assert mean_components(Settings(models=models).models) == parts


def test_run_params_leave_out_where_and_how_to_fetch() -> None:
    params = Settings(source="a.csv", force=True).run_params()
    assert "source" not in params and "force" not in params
    assert params["models"] == list(ALL_MODELS)


def test_sources_come_in_order_from_the_env_or_as_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SP500_SOURCE", " https://a.example/x.csv  b.csv#date=Date&value=SP500 ")
    assert Settings().source == ("https://a.example/x.csv", "b.csv#date=Date&value=SP500")
    assert Settings(source=("c.csv", "d.csv")).source == ("c.csv", "d.csv")
