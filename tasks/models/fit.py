"""Every fit a run makes of one model: a model and a plan of members in, fitted members out.

A network is fitted **once**, as one stacked Keras fit (``tasks.models.stacked``) that holds
the evaluation ensemble (``seeds`` members on the lesson's training windows), the forecast
ensemble (``seeds`` members on every window) and one member per rolling origin (seed
``seed``), each on its own windows with its own scaler. A baseline is fitted role by role
and origin by origin through the same registry interface. What comes out: the two
ensembles as registry models (saved like any fit's) and ``OriginModels``, which forecast
each origin's own windows; ``tasks.evaluation.rolling`` turns those into rolling paths.

Index convention: an origin is a sample count ``cut`` (the fit sees samples ``[0, cut)``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from core.settings import Settings
from tasks.data.windows import ScalingName, Windows, fit_scaler
from tasks.models.keras_quiet import keras
from tasks.models.registry import Ensemble, FitOptions, Forecaster, Network, model_spec
from tasks.models.stacked import Member, StackedFit, fit_stacked
from tasks.models.train import TrainedModel, fit_model, save_model


def stacked_paths(
    fit: StackedFit, blocks: list[np.ndarray], horizon: int, seeds: int = 1, first: int = 0
) -> list[np.ndarray]:
    """Recursive forecasts of each origin from its own raw windows ``blocks[k]``: ``(n_k, H)``.

    Members ``first + k * seeds …`` (``seeds`` of them) are origin k's ensemble: each step's
    forecast is their mean, fed back as the ensemble's own rule does. One network call per
    step serves every member (members before ``first`` are computed and ignored); short
    blocks are padded with their last window (the padding is dropped).
    """
    size = max(len(b) for b in blocks)
    current = [np.concatenate([b, np.repeat(b[-1:], size - len(b), axis=0)]) for b in blocks]
    paths = [np.empty((size, horizon)) for _ in blocks]
    for h in range(horizon):
        inputs = np.stack(
            [
                m.scaler.transform_X(current[max(g - first, 0) // seeds])
                for g, m in enumerate(fit.members)
            ],
            axis=1,
        )
        scaled = keras.ops.convert_to_numpy(fit.network(inputs, training=False))
        for k in range(len(blocks)):
            steps = [
                fit.members[g].scaler.inverse_y(scaled[:, g], current[k])
                for g in range(first + k * seeds, first + (k + 1) * seeds)
            ]
            step = np.mean(steps, axis=0)
            paths[k][:, h] = step
            current[k] = np.concatenate([current[k][:, 1:], step[:, None]], axis=1)
    return [p[: len(b)] for p, b in zip(paths, blocks, strict=True)]


@dataclass(frozen=True)
class OriginModels:
    """Every rolling origin's fitted model, ready to forecast that origin's own windows.

    A network's origins are members of one stacked fit (``seeds`` members per origin from
    member ``first`` on); a baseline's are one registry model per origin.
    """

    stacked: StackedFit | None = None
    baselines: tuple[Forecaster, ...] = ()
    seeds: int = 1
    first: int = 0

    def paths(self, blocks: list[np.ndarray], horizon: int) -> list[np.ndarray]:
        """Forecasts 1 … ``horizon`` from each window of each origin's ``blocks[k]``."""
        if self.stacked is None:
            return [m.paths(b, horizon) for m, b in zip(self.baselines, blocks, strict=True)]
        return stacked_paths(self.stacked, blocks, horizon, self.seeds, self.first)


def fit_origins(
    name: str,
    windows: Windows,
    cuts: tuple[int, ...],
    *,
    scaling: ScalingName,
    epochs: int,
    batch_size: int,
    seed: int,
    seeds: int = 1,
) -> tuple[OriginModels, float]:
    """Fit model ``name`` at every origin ``cuts`` (its own scaler each); and the seconds.

    A network fits ``seeds`` members per origin (seeds ``seed`` …), all in one stacked fit;
    a baseline ignores ``seeds``.
    """
    spec = model_spec(name)
    started = time.perf_counter()
    scalers = [fit_scaler(scaling, windows.part(0, c)) for c in cuts]
    if spec.builder is None:
        options = FitOptions(epochs, batch_size, seed)
        baselines = tuple(
            spec.fit(windows.part(0, c), scaler, options)
            for c, scaler in zip(cuts, scalers, strict=True)
        )
        return OriginModels(baselines=baselines), time.perf_counter() - started
    members = [
        Member(s, c, scaler, f"origin {windows.months[c - 1]:%Y-%m} (seed {s})")
        for c, scaler in zip(cuts, scalers, strict=True)
        for s in range(seed, seed + seeds)
    ]
    fit = fit_stacked(
        name,
        spec.builder,
        windows.part(0, cuts[-1]),
        members,
        epochs=epochs,
        batch_size=batch_size,
    )
    return OriginModels(stacked=fit, seeds=seeds), time.perf_counter() - started


@dataclass
class ModelFits:
    """One model's fits for a run: the lesson split's, the forecast's, and every origin's."""

    evaluation: TrainedModel
    forecast: TrainedModel
    origins: OriginModels
    seconds: float  # every fit of the model


def fit_every_role(
    name: str,
    windows: Windows,
    split_at: int,
    cuts: tuple[int, ...],
    *,
    scaling: ScalingName,
    epochs: int,
    batch_size: int,
    seed: int,
    seeds: int,
    artifact_dir: Path | None = None,
    report: Callable[[int, float], None] | None = None,
) -> ModelFits:
    """Fit one model for every use a run makes of it; a network in **one** stacked fit.

    The two ensembles come out as registry networks (saved like any fit's); the origins'
    members (one per origin ``cuts``, seed ``seed``) as ``OriginModels``.
    """
    train = windows.part(0, split_at)
    spec = model_spec(name)
    started = time.perf_counter()
    if spec.builder is None:
        fitted = {
            role: fit_model(
                name,
                data,
                fit_scaler(scaling, data),
                role=role,
                artifact_dir=artifact_dir,
                epochs=epochs,
                batch_size=batch_size,
                seed=seed,
                seeds=seeds,
            )
            for role, data in (("evaluation", train), ("forecast", windows))
        }
        origins, _ = fit_origins(
            name, windows, cuts, scaling=scaling, epochs=epochs, batch_size=batch_size, seed=seed
        )
        return ModelFits(
            fitted["evaluation"], fitted["forecast"], origins, time.perf_counter() - started
        )
    roles = {
        "evaluation": (split_at, fit_scaler(scaling, train)),
        "forecast": (len(windows), fit_scaler(scaling, windows)),
    }
    ensemble = range(seed, seed + seeds)
    members = [
        Member(s, n, scaler, f"seed {s} ({role})")
        for role, (n, scaler) in roles.items()
        for s in ensemble
    ]
    first = len(members)
    members += [
        Member(
            seed,
            c,
            fit_scaler(scaling, windows.part(0, c)),
            f"origin {windows.months[c - 1]:%Y-%m}",
        )
        for c in cuts
    ]
    fit = fit_stacked(
        name, spec.builder, windows, members, epochs=epochs, batch_size=batch_size, report=report
    )
    share = fit.train_seconds / len(members)  # a stacked fit's time, split by its members
    fitted = {}
    for r, (role, (n, scaler)) in enumerate(roles.items()):
        networks = tuple(
            Network(fit.export(r * seeds + k), scaler, s, name) for k, s in enumerate(ensemble)
        )
        model = TrainedModel(
            name,
            Ensemble(networks, epochs),
            share * seeds,
            role=role,
            trained_through=pd.Timestamp(windows.months[n - 1]),
        )
        save_model(model, artifact_dir)
        fitted[role] = model
    origins = OriginModels(stacked=fit, first=first)
    return ModelFits(
        fitted["evaluation"], fitted["forecast"], origins, time.perf_counter() - started
    )


@dataclass(frozen=True)
class FittedModel:
    """What a run keeps of one model's fits: both ensembles and every origin's forecasts.

    Plain data and plain Keras models only, so it crosses a task runner's process boundary
    (the stacked network of the origins does not: its forecasts are made where it was fitted).
    """

    evaluation: TrainedModel
    forecast: TrainedModel
    origin_paths: list[np.ndarray]  # per origin, (n_k, H) forecasts of its own windows
    seconds: float


@task(name="fit_model", task_run_name="fit-{name}", cache_policy=NO_CACHE)
def fit_model_task(
    name: str,
    windows: Windows,
    split_at: int,
    cuts: tuple[int, ...],
    blocks: list[np.ndarray],
    settings: Settings,
    artifact_dir: Path | None,
    position: str,
) -> FittedModel:
    """Every fit a run makes of one model (one stacked fit for a network), with progress.

    Each origin (``cuts``) then forecasts 1 … ``settings.horizon`` from each window of its
    own ``blocks[k]``.
    """
    logger = get_run_logger()
    epochs = settings.epochs

    def report(epoch: int, loss: float) -> None:
        logger.info("%s (model %s): epoch %d/%d, loss %.4f", name, position, epoch, epochs, loss)

    logger.info(
        "%s (model %s): training (evaluation and forecast ensembles, %d rolling origins)",
        name,
        position,
        len(cuts),
    )
    fits = fit_every_role(
        name,
        windows,
        split_at,
        cuts,
        scaling=settings.scaling,
        epochs=epochs,
        batch_size=settings.batch_size,
        seed=settings.seed,
        seeds=settings.seeds,
        artifact_dir=artifact_dir,
        report=report,
    )
    logger.info(
        "%s (model %s): %d parameters x %d seeds, every fit in %.1f s",
        name,
        position,
        fits.evaluation.n_params,
        max(1, len(fits.evaluation.seeds)),
        fits.seconds,
    )
    paths = fits.origins.paths(blocks, settings.horizon)
    return FittedModel(fits.evaluation, fits.forecast, paths, fits.seconds)
