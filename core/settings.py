"""The one typed settings object of the pipeline, read once from the CLI and ``SP500_*`` env."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.sources import parse_source, split_sources
from core.specs import canonical, split_specs

DEFAULT_SOURCE = "https://datatweets.com/datasets/sp500_monthly.csv"
KERAS_MODELS: tuple[str, ...] = ("simple_rnn", "gru", "lstm", "conv1d_lstm")
BASELINE_MODELS: tuple[str, ...] = ("naive", "drift")
# a combination: the equal-weight mean of the run's networks' and drift's forecasts
COMBINED_MODELS: tuple[str, ...] = ("mean",)
ALL_MODELS: tuple[str, ...] = BASELINE_MODELS + KERAS_MODELS + COMBINED_MODELS


def mean_components(models: tuple[str, ...] | list[str]) -> list[str]:
    """The models ``mean`` averages: the networks (variants too) and drift, in run order."""
    return [m for m in models if m.split("[", 1)[0] not in ("naive", *COMBINED_MODELS)]


class Settings(BaseSettings):
    """Every knob of one pipeline run; values come from CLI options, then ``SP500_*`` env."""

    model_config = SettingsConfigDict(env_prefix="SP500_", frozen=True, extra="forbid")

    # tried in order until one downloads and validates; env: separated by spaces. A single
    # string stays valid (deployment parameters written before several sources existed)
    # and becomes a one-source tuple.
    source: Annotated[tuple[str, ...] | str, NoDecode] = (DEFAULT_SOURCE,)
    warehouse: Path = Path("warehouse/sp500.duckdb")
    models: Annotated[tuple[str, ...], NoDecode] = ALL_MODELS  # env: comma-separated
    epochs: int = Field(default=60, ge=1, le=10_000)
    batch_size: int = Field(default=32, ge=1, le=4096)
    window: int = Field(default=12, ge=2, le=240)
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    scaling: Literal["window", "minmax"] = "window"
    seed: int = 42
    seeds: int = Field(default=5, ge=1, le=100)  # ensemble members per network
    horizon: int = Field(default=12, ge=1, le=24)  # months forecast ahead, T+1 … T+horizon
    # the rolling-origin evaluation of every run: refit every N months from this month on
    # (None: 1975-01, or the first month with enough windows for a series that starts later)
    refit_every: int = Field(default=12, ge=1, le=600)
    evaluate_from: str | None = None  # YYYY-MM
    force: bool = False
    # where `sp500 notify` / `sp500 serve --notify-url` point the server's automations
    notify_url: str | None = None
    date_column: str = "date"
    value_column: str = "close"
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_bytes: int = Field(default=10_000_000, ge=1)
    download_attempts: int = Field(default=4, ge=1, le=20)
    backoff_seconds: float = Field(default=1.0, ge=0)
    wait_seconds: float = Field(default=0.0, ge=0)
    # sp500 backtest only
    origins: int = Field(default=60, ge=1)
    chunk_size: int = Field(default=60, ge=1, le=10_000)  # origins per stacked fit (task run)
    # Where fits run. None: the command's default (backtest: process; run: one model after
    # the other, in the flow's own process).
    task_runner: Literal["thread", "process", "dask"] | None = None
    dask_address: str | None = None
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)

    @field_validator("source", mode="before")
    @classmethod
    def _split_sources(cls, value: object) -> object:
        if isinstance(value, str):
            value = split_sources(value)
        return value

    @field_validator("source")
    @classmethod
    def _known_sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("empty source list: pass --source URL or set SP500_SOURCE")
        for text in value:
            parse_source(text)  # an unknown mapping key fails here
        return value

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            value = split_specs(value)  # commas inside name[key=value,...] stay
        return value

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(canonical(spec) for spec in value)  # unknown names and keys fail here
        if not names:
            raise ValueError("at least one model is required")
        if len(set(names)) != len(names):
            raise ValueError("a model is named twice")
        if "mean" in names and not mean_components(names):
            raise ValueError("mean averages the networks and drift: name at least one of them")
        return names

    @field_validator("notify_url")
    @classmethod
    def _an_http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^/\s?#]+(/\S*)?", value):
            raise ValueError(f"must be an http or https URL, got {value!r}")
        return value

    @field_validator("evaluate_from")
    @classmethod
    def _a_month(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
            raise ValueError(f"must be a month, YYYY-MM (e.g. 1975-01), got {value!r}")
        return value

    def run_params(self) -> dict[str, object]:
        """Return the settings that decide a run's results, as stored in ``runs.params``."""
        return {
            "models": list(self.models),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "window": self.window,
            "test_fraction": self.test_fraction,
            "scaling": self.scaling,
            "seed": self.seed,
            "seeds": self.seeds,
            "horizon": self.horizon,
            "refit_every": self.refit_every,
            "evaluate_from": self.evaluate_from,
            "date_column": self.date_column,
            "value_column": self.value_column,
        }

    def backtest_params(self) -> dict[str, object]:
        """Return the settings that decide a backtest's results, as stored in ``runs.params``."""
        params = self.run_params()
        # the backtest refits every month and bands online; no split, no horizon beyond 1
        for key in ("test_fraction", "horizon", "refit_every", "evaluate_from"):
            del params[key]
        params.update(
            origins=self.origins,
            chunk_size=self.chunk_size,
        )
        return params

    @property
    def reports_dir(self) -> Path:
        """Directory for report PNGs, beside the warehouse file."""
        return self.warehouse.parent / "reports"

    @property
    def models_dir(self) -> Path:
        """Directory that holds saved ``.keras`` models, beside the warehouse file."""
        return self.warehouse.parent / "models"
