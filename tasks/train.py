"""Fit one model on the training windows, save it, and time the fit."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.keras_quiet import keras
from tasks.models import FitOptions, Forecaster, model_spec
from tasks.windows import Scaler, Windows


@dataclass
class TrainedModel:
    """A fitted model with what the warehouse records about it; ``predict`` returns prices."""

    name: str
    forecaster: Forecaster
    train_seconds: float
    artifact_path: Path | None = None
    artifact_sha256: str | None = None

    @property
    def n_params(self) -> int:
        """Parameters of one fitted model (0 for naive, 1 for drift)."""
        return self.forecaster.n_params

    @property
    def epochs(self) -> int:
        """Training epochs (0 for the baselines)."""
        return self.forecaster.epochs

    @property
    def seed(self) -> int | None:
        """The initialisation's seed; None for the baselines."""
        return self.forecaster.seed

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Forecast the next close for each raw window in ``X`` ``(n, window)``."""
        return self.forecaster.predict(X)


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
    artifact_dir: Path | None = None,
    report: Callable[[int, float], None] | None = None,
) -> TrainedModel:
    """Fit model ``name`` on training windows; what it can save goes to ``artifact_dir``.

    Raises:
        ValueError: ``name`` is not in the registry.
    """
    spec = model_spec(name)
    started = time.perf_counter()
    forecaster = spec.fit(train, scaler, FitOptions(epochs, batch_size, seed, report))
    model = TrainedModel(name, forecaster, time.perf_counter() - started)
    if artifact_dir is not None:
        artifact_dir.mkdir(parents=True, exist_ok=True)
        path = artifact_dir / f"{name}.keras"
        if forecaster.save(path):
            model.artifact_path = path
            model.artifact_sha256 = sha256_file(path)
    return model


@task(name="train_model", task_run_name="train-{name}", cache_policy=NO_CACHE)
def train_model(
    name: str,
    train: Windows,
    scaler: Scaler,
    epochs: int,
    batch_size: int,
    seed: int,
    artifact_dir: Path | None,
    position: str,
) -> TrainedModel:
    """Fit one model, logging progress as ``model k/n`` and epochs."""
    logger = get_run_logger()

    def report(epoch: int, loss: float) -> None:
        logger.info("%s (model %s): epoch %d/%d, loss %.4f", name, position, epoch, epochs, loss)

    logger.info("%s (model %s): training", name, position)
    model = fit_model(
        name,
        train,
        scaler,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        artifact_dir=artifact_dir,
        report=report,
    )
    logger.info(
        "%s (model %s): %d parameters, fitted in %.1f s",
        name,
        position,
        model.n_params,
        model.train_seconds,
    )
    return model
