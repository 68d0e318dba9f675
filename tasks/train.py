"""Fit one model on the training windows, save it, and time the fit."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.models import KERAS_BUILDERS, drift_predict, fit_drift, naive_predict
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


class _EpochLogger(keras.callbacks.Callback):
    def __init__(self, report: Callable[[int, float], None], epochs: int) -> None:
        super().__init__()
        self.report = report
        self.every = max(1, epochs // 6)
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        done = epoch + 1
        if done % self.every == 0 or done == self.epochs:
            self.report(done, float((logs or {}).get("loss", float("nan"))))


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


def batches_per_epoch(n_samples: int, batch_size: int) -> int:
    """Number of training batches in one epoch of ``n_samples`` (the last one may be short)."""
    return max(1, math.ceil(n_samples / batch_size))


def _fit_network(
    network: keras.Model,
    train: Windows,
    scaler: Scaler,
    epochs: int,
    batch_size: int,
    callbacks: list[keras.callbacks.Callback],
) -> None:
    network.fit(
        scaler.transform_X(train.X),
        scaler.transform_y(train.y, train.X),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )


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
    """Fit model ``name`` on training windows; Keras models are saved under ``artifact_dir``."""
    started = time.perf_counter()
    if name == "naive":
        return TrainedModel(name, 0, 0, time.perf_counter() - started, scaler)
    if name == "drift":
        drift = fit_drift(train)
        return TrainedModel(name, 1, 0, time.perf_counter() - started, scaler, drift=drift)
    if name not in KERAS_BUILDERS:
        raise ValueError(f"unknown model {name!r}")
    keras.utils.set_random_seed(seed)
    network = KERAS_BUILDERS[name](train.X.shape[1])
    # One compiled call runs a whole epoch: the same batches and updates as one call per
    # batch, without the Python round trip between steps (a quarter to a third of CPU fit time).
    network.compile(
        optimizer=keras.optimizers.Adam(),
        loss="mse",
        steps_per_execution=batches_per_epoch(len(train.y), batch_size),
    )
    callbacks = [_EpochLogger(report, epochs)] if report else []
    _fit_network(network, train, scaler, epochs, batch_size, callbacks)
    seconds = time.perf_counter() - started
    model = TrainedModel(name, network.count_params(), epochs, seconds, scaler, network=network)
    if artifact_dir is not None:
        artifact_dir.mkdir(parents=True, exist_ok=True)
        path = artifact_dir / f"{name}.keras"
        network.save(path)
        model.artifact_path = path
        model.artifact_sha256 = sha256_file(path)
    return model


def continue_fit(
    model: TrainedModel, train: Windows, scaler: Scaler, *, epochs: int, batch_size: int
) -> TrainedModel:
    """Warm start: train a fitted Keras model ``epochs`` more on ``train`` from its weights.

    The network (and its optimizer state) is updated in place and shared with the result.
    """
    if model.network is None:
        raise ValueError(f"{model.name} has no network to warm-start")
    started = time.perf_counter()
    _fit_network(model.network, train, scaler, epochs, batch_size, [])
    seconds = time.perf_counter() - started
    return TrainedModel(model.name, model.n_params, epochs, seconds, scaler, network=model.network)


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
