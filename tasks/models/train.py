"""Fit one model on the training windows, save it, and time the fit."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.data.windows import Scaler, Windows
from tasks.models.keras_quiet import keras
from tasks.models.registry import FitOptions, Forecaster, model_spec

ROLES = ("evaluation", "forecast")


@dataclass
class TrainedModel:
    """A fitted model with what the warehouse records about it; ``predict`` returns prices.

    ``role`` is ``evaluation`` (fitted on the training split, scored on the test split) or
    ``forecast`` (fitted on every window, forecasts next month). ``trained_through`` is the
    last target month the fit saw. ``artifacts`` maps each member's seed to its saved file
    and that file's sha256.
    """

    name: str
    forecaster: Forecaster
    train_seconds: float
    role: str = "evaluation"
    trained_through: pd.Timestamp | None = None
    artifacts: dict[int, tuple[Path, str]] = field(default_factory=dict)

    @property
    def n_params(self) -> int:
        """Parameters of one fitted member (0 for naive, 1 for drift)."""
        return self.forecaster.n_params

    @property
    def epochs(self) -> int:
        """Training epochs (0 for the baselines)."""
        return self.forecaster.epochs

    @property
    def seeds(self) -> tuple[int, ...]:
        """One seed per ensemble member; empty for the baselines."""
        return self.forecaster.seeds

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Forecast the next close for each raw window in ``X`` ``(n, window)``."""
        return self.forecaster.predict(X)

    def paths(self, X: np.ndarray, horizon: int) -> np.ndarray:
        """Forecasts 1 … ``horizon`` months after each raw window, ``(n, horizon)``."""
        return self.forecaster.paths(X, horizon)

    def member_predictions(self, X: np.ndarray) -> np.ndarray:
        """Each member's forecasts ``(n, len(seeds))``."""
        return self.forecaster.member_predictions(X)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_network(path: Path, expected_sha256: str | None = None) -> keras.Model:
    """Load a saved ``.keras`` network in Keras safe mode (no arbitrary code or pickles).

    Raises:
        ValueError: the file's sha256 differs from the one the warehouse recorded.
    """
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise ValueError(f"{path} does not match its recorded sha256")
    return keras.saving.load_model(path, compile=False, safe_mode=True)


def fit_model(
    name: str,
    train: Windows,
    scaler: Scaler,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    seeds: int = 1,
    role: str = "evaluation",
    artifact_dir: Path | None = None,
    report: Callable[[int, float], None] | None = None,
) -> TrainedModel:
    """Fit model ``name`` (a network: ``seeds`` members, stacked); save what it can.

    Files go to ``artifact_dir/{name}-{role}-seed{seed}.keras``, one per member.

    Raises:
        ValueError: ``name`` is not in the registry, or ``role`` is not one of ``ROLES``.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
    spec = model_spec(name)
    started = time.perf_counter()
    forecaster = spec.fit(train, scaler, FitOptions(epochs, batch_size, seed, seeds, report))
    model = TrainedModel(
        name,
        forecaster,
        time.perf_counter() - started,
        role=role,
        trained_through=pd.Timestamp(train.months[-1]),
    )
    save_model(model, artifact_dir)
    return model


def save_model(model: TrainedModel, artifact_dir: Path | None) -> None:
    """Save each member to ``artifact_dir/{name}-{role}-seed{seed}.keras`` and record its sha256."""
    if artifact_dir is None:
        return
    artifact_dir.mkdir(parents=True, exist_ok=True)
    saved = model.forecaster.save(artifact_dir, f"{model.name}-{model.role}")
    model.artifacts = {s: (path, sha256_file(path)) for s, path in saved.items()}


def combine_fits(name: str, components: list[TrainedModel]) -> TrainedModel:
    """The combination ``name`` (e.g. ``mean``) of fits of one role on the same windows.

    Raises:
        ValueError: ``name`` is not a combination, there are no components, or they differ
            in role or in the data they saw.
    """
    combine = model_spec(name).combine
    if combine is None:
        raise ValueError(f"{name} is not a combination of other models")
    if not components:
        raise ValueError(f"{name} needs at least one fitted model to combine")
    first = components[0]
    if any((c.role, c.trained_through) != (first.role, first.trained_through) for c in components):
        raise ValueError(f"{name}: the fits to combine differ in role or training data")
    return TrainedModel(
        name,
        combine(tuple(c.forecaster for c in components)),
        0.0,
        role=first.role,
        trained_through=first.trained_through,
    )


@task(name="combine_model", task_run_name="combine-{name}-{role}", cache_policy=NO_CACHE)
def combine_model(name: str, components: list[TrainedModel], role: str) -> TrainedModel:
    """Combine fitted models (``mean``: equal weights) and log what went in."""
    model = combine_fits(name, components)
    get_run_logger().info(
        "%s (%s): equal-weight mean of %s", name, role, ", ".join(c.name for c in components)
    )
    return model
