"""Fit one model on the training windows, save it, and time the fit."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.models import KERAS_BUILDERS, drift_predict, fit_drift, naive_predict
from tasks.stacked import Member, fit_stacked
from tasks.windows import Scaler, Windows


@dataclass
class TrainedModel:
    """A fitted model with what the warehouse records about it; ``predict`` returns prices."""

    name: str
    n_params: int
    epochs: int
    train_seconds: float
    scaler: Scaler
    network: keras.Model | None = None
    drift: float | None = None
    artifact_path: Path | None = None
    artifact_sha256: str | None = None
    seed: int | None = None  # the initialisation's seed; None for the baselines

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Forecast the next close for each raw window in ``X`` ``(n, window)``."""
        if self.name == "naive":
            return naive_predict(X)
        if self.name == "drift":
            assert self.drift is not None
            return drift_predict(X, self.drift)
        assert self.network is not None
        # A direct call runs eagerly: no per-shape tf.function retracing for small batches.
        scaled = keras.ops.convert_to_numpy(
            self.network(self.scaler.transform_X(X), training=False)
        )
        return self.scaler.inverse_y(scaled.reshape(-1), X)


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
    """Fit model ``name`` on training windows; Keras models are saved under ``artifact_dir``.

    A network trains as a one-member stacked fit (the path the backtest uses for many
    members) and is exported into the registry's plain Keras model, which is what is saved.
    """
    started = time.perf_counter()
    if name == "naive":
        return TrainedModel(name, 0, 0, time.perf_counter() - started, scaler)
    if name == "drift":
        drift = fit_drift(train)
        return TrainedModel(name, 1, 0, time.perf_counter() - started, scaler, drift=drift)
    if name not in KERAS_BUILDERS:
        raise ValueError(f"unknown model {name!r}")
    member = Member(seed=seed, samples=len(train), scaler=scaler, label=f"seed {seed}")
    stacked = fit_stacked(
        name,
        KERAS_BUILDERS[name],
        train,
        [member],
        epochs=epochs,
        batch_size=batch_size,
        report=report,
    )
    network = stacked.export(0)
    seconds = time.perf_counter() - started
    model = TrainedModel(
        name, network.count_params(), epochs, seconds, scaler, network=network, seed=seed
    )
    if artifact_dir is not None:
        artifact_dir.mkdir(parents=True, exist_ok=True)
        path = artifact_dir / f"{name}.keras"
        network.save(path)
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
