"""Model registry: every model behind one small interface (fit, predict, save).

Two baselines (``naive``, ``drift``) and four Keras networks. A network's registry entry
also carries its builder, which is what lets it train as a member of a stacked fit.
"""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from core.specs import parse_spec
from tasks.data.windows import Scaler, Windows
from tasks.models.keras_quiet import keras, tf
from tasks.models.stacked import KerasBuilder, Member, fit_stacked


class _Initializers:
    """Keras's default initializers, each with its own seed drawn from ``seed``.

    Left unseeded, a Keras initializer draws its seed from Python's global ``random`` when
    the layer is built, so another thread's use of ``random`` (a Prefect service, a second
    fit in the thread runner) could change a network's initial weights. Explicit seeds make
    them a function of ``seed`` alone.
    """

    def __init__(self, seed: int) -> None:
        self._seeds = random.Random(seed)

    def _next(self) -> int:
        return self._seeds.randrange(1, 2**31)

    def kernel(self) -> dict[str, keras.initializers.Initializer]:
        """Glorot-uniform input weights (every layer here)."""
        return {"kernel_initializer": keras.initializers.GlorotUniform(seed=self._next())}

    def recurrent(self) -> dict[str, keras.initializers.Initializer]:
        """Glorot-uniform input weights and orthogonal recurrent weights (RNN layers)."""
        return {
            **self.kernel(),
            "recurrent_initializer": keras.initializers.Orthogonal(seed=self._next()),
        }


def _head(
    inputs: keras.KerasTensor,
    body: keras.KerasTensor,
    name: str,
    init: _Initializers,
    dense_units: int,
) -> keras.Model:
    hidden = keras.layers.Dense(dense_units, activation="relu", name="hidden", **init.kernel())(
        body
    )
    output = keras.layers.Dense(1, name="output", **init.kernel())(hidden)
    return keras.Model(inputs, output, name=name)


def build_simple_rnn(
    window: int, seed: int, *, units: int = 32, dense_units: int = 16
) -> keras.Model:
    """SimpleRNN(units) → Dense(dense_units, relu) → Dense(1) on ``(window, 1)`` inputs."""
    init = _Initializers(seed)
    inputs = keras.Input((window, 1))
    body = keras.layers.SimpleRNN(units, **init.recurrent())(inputs)
    return _head(inputs, body, "simple_rnn", init, dense_units)


def build_gru(window: int, seed: int, *, units: int = 32, dense_units: int = 16) -> keras.Model:
    """GRU(units) → Dense(dense_units, relu) → Dense(1) on ``(window, 1)`` inputs."""
    init = _Initializers(seed)
    inputs = keras.Input((window, 1))
    body = keras.layers.GRU(units, **init.recurrent())(inputs)
    return _head(inputs, body, "gru", init, dense_units)


def build_lstm(window: int, seed: int, *, units: int = 32, dense_units: int = 16) -> keras.Model:
    """LSTM(units) → Dense(dense_units, relu) → Dense(1) on ``(window, 1)`` inputs."""
    init = _Initializers(seed)
    inputs = keras.Input((window, 1))
    body = keras.layers.LSTM(units, **init.recurrent())(inputs)
    return _head(inputs, body, "lstm", init, dense_units)


def build_conv1d_lstm(
    window: int,
    seed: int,
    *,
    units: int = 32,
    dense_units: int = 16,
    filters: int = 32,
    kernel_size: int = 3,
) -> keras.Model:
    """Causal Conv1D(filters, kernel_size, relu) → LSTM(units) → Dense(dense_units) → Dense(1).

    The padding is always causal: no spec key can change it.
    """
    init = _Initializers(seed)
    inputs = keras.Input((window, 1))
    conv = keras.layers.Conv1D(
        filters,
        kernel_size,
        padding="causal",
        activation="relu",
        name="causal_conv",
        **init.kernel(),
    )(inputs)
    body = keras.layers.LSTM(units, **init.recurrent())(conv)
    return _head(inputs, body, "conv1d_lstm", init, dense_units)


KERAS_BUILDERS: dict[str, KerasBuilder] = {
    "simple_rnn": build_simple_rnn,
    "gru": build_gru,
    "lstm": build_lstm,
    "conv1d_lstm": build_conv1d_lstm,
}


def naive_predict(X: np.ndarray) -> np.ndarray:
    """Last-value forecast: each window's final close."""
    return np.asarray(X, dtype=np.float64)[:, -1].copy()


def fit_drift(train: Windows) -> float:
    """Mean monthly log return over the training targets."""
    return float(np.mean(np.log(train.y / train.last)))


def drift_predict(X: np.ndarray, mean_log_return: float) -> np.ndarray:
    """Last value times ``exp(mean train monthly log return)``."""
    return naive_predict(X) * np.exp(mean_log_return)


def recursive_paths(
    predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, horizon: int
) -> np.ndarray:
    """Forecast ``horizon`` months from each raw window in ``X`` by feeding forecasts back.

    Step h sees the window's closes with its own forecasts of steps 1 … h-1 appended (and
    as many of the oldest closes dropped): no price after the window's last month enters.
    Column h-1 of the ``(n, horizon)`` result is the forecast h months after the window.
    ``predict`` is the whole model's, so an ensemble feeds back its mean forecast.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    window = np.array(X, dtype=np.float64, ndmin=2)
    paths = np.empty((len(window), horizon))
    for h in range(horizon):
        step = np.asarray(predict(window), dtype=np.float64)
        paths[:, h] = step
        window = np.concatenate([window[:, 1:], step[:, None]], axis=1)
    return paths


class Forecaster(Protocol):
    """A fitted model: price forecasts from raw windows, and what the warehouse records."""

    @property
    def n_params(self) -> int:
        """Trainable parameters of one member."""
        ...

    @property
    def epochs(self) -> int:
        """Training epochs (0 for what trains nothing)."""
        ...

    @property
    def seeds(self) -> tuple[int, ...]:
        """One seed per ensemble member; () when nothing is random."""
        ...

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Forecast the next close for each raw window in ``X`` ``(n, window)``."""
        ...

    def paths(self, X: np.ndarray, horizon: int) -> np.ndarray:
        """Forecasts 1 … ``horizon`` months after each raw window, ``(n, horizon)``."""
        ...

    def member_predictions(self, X: np.ndarray) -> np.ndarray:
        """Each member's forecasts, ``(n, len(seeds))``; ``(n, 0)`` for a baseline."""
        ...

    def save(self, directory: Path, stem: str) -> dict[int, Path]:
        """Write each member to ``directory/{stem}-seed{seed}.keras``; {} if nothing to save."""
        ...


@dataclass(frozen=True)
class FitOptions:
    """How to fit: the training knobs every model is offered (baselines ignore them).

    A network trains ``seeds`` members, seeds ``seed`` … ``seed + seeds - 1``, stacked.
    """

    epochs: int
    batch_size: int
    seed: int
    seeds: int = 1
    report: Callable[[int, float], None] | None = None


@dataclass(frozen=True)
class _Baseline:
    n_params: int = 0
    epochs: int = 0
    seeds: tuple[int, ...] = ()

    def member_predictions(self, X: np.ndarray) -> np.ndarray:
        return np.empty((len(X), 0))

    def save(self, directory: Path, stem: str) -> dict[int, Path]:
        return {}

    def paths(self, X: np.ndarray, horizon: int) -> np.ndarray:
        return recursive_paths(self.predict, X, horizon)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class LastValue(_Baseline):
    """``naive``: next month's close is this month's."""

    def predict(self, X: np.ndarray) -> np.ndarray:  # noqa: D102
        return naive_predict(X)


@dataclass(frozen=True)
class Drift(_Baseline):
    """``drift``: the last close times exp(mean monthly log return of the training data)."""

    mean_log_return: float = 0.0
    n_params: int = 1

    def predict(self, X: np.ndarray) -> np.ndarray:  # noqa: D102
        return drift_predict(X, self.mean_log_return)


_ForwardPass = Callable[[list, list, np.ndarray], tf.Tensor]
_FORWARD_PASSES: dict[tuple[str, str], _ForwardPass] = {}
_FORWARD_PASSES_LOCK = threading.Lock()


def forward_pass(architecture: str, network: keras.Model) -> _ForwardPass:
    """The traced forward pass shared by the networks of ``architecture`` (a registry name).

    It takes a network's weights as arguments (Keras's ``stateless_call``), so a run traces
    it once per architecture and batch-size pattern (twice: the second shape relaxes the
    batch size) instead of once per network: a trace costs ~80 ms, a run predicts with
    dozens of networks. ``network`` serves as the template on the first call for its
    architecture and dtype policy (a float64 network computes in float64).
    """
    key = (architecture, network.dtype_policy.name)
    with _FORWARD_PASSES_LOCK:
        if key not in _FORWARD_PASSES:

            def call(trainable: list, non_trainable: list, X: np.ndarray) -> tf.Tensor:
                return network.stateless_call(trainable, non_trainable, X, training=False)[0]

            _FORWARD_PASSES[key] = tf.function(call, reduce_retracing=True)
        return _FORWARD_PASSES[key]


@dataclass(frozen=True)
class Network:
    """One fitted registry network (one seed) with the scaler of its training data.

    ``architecture`` is the registry name it was built from (``lstm``, ``lstm[units=64]``):
    networks of one architecture compute the same function of their weights.
    """

    network: keras.Model
    scaler: Scaler
    seed: int
    architecture: str

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Price forecasts for raw windows ``(n, window)``."""
        forward = forward_pass(self.architecture, self.network)
        scaled = forward(
            [v.value for v in self.network.trainable_variables],
            [v.value for v in self.network.non_trainable_variables],
            self.scaler.transform_X(X),
        )
        return self.scaler.inverse_y(np.asarray(scaled).reshape(-1), X)


@dataclass(frozen=True)
class Ensemble:
    """A network's seed ensemble: its forecast is the mean of its members' price forecasts.

    The mean is taken on the price scale: the leaderboard scores squared errors in index
    points, and for squared error the mean of the members' forecasts never scores worse than
    the members do on average. (The geometric mean, a mean of log returns, sits a hair
    below it; with members a percent apart the two differ by far less than a point.)
    """

    members: tuple[Network, ...]
    epochs: int

    @property
    def n_params(self) -> int:
        """Parameters of one member (the plain Keras model)."""
        return self.members[0].network.count_params()

    @property
    def seeds(self) -> tuple[int, ...]:  # noqa: D102
        return tuple(m.seed for m in self.members)

    def member_predictions(self, X: np.ndarray) -> np.ndarray:  # noqa: D102
        return np.stack([m.predict(X) for m in self.members], axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:  # noqa: D102
        return self.member_predictions(X).mean(axis=1)

    def paths(self, X: np.ndarray, horizon: int) -> np.ndarray:
        """Recursive paths that feed back the ensemble's mean forecast."""
        return recursive_paths(self.predict, X, horizon)

    def save(self, directory: Path, stem: str) -> dict[int, Path]:  # noqa: D102
        paths = {}
        for member in self.members:
            path = directory / f"{stem}-seed{member.seed}.keras"
            member.network.save(path)
            paths[member.seed] = path
        return paths


@dataclass(frozen=True)
class Combination:
    """``mean``: the equal-weight mean of other fitted models' forecasts, at every horizon.

    Its h-step forecast is the mean of its components' own h-step forecasts (each component
    recurses on its own forecasts), not a recursion on the mean. It fits nothing of its own
    and has nothing to save (its components are saved with their own fits), but it costs
    what its parts cost: ``n_params`` is their sum.
    """

    components: tuple[Forecaster, ...]
    epochs: int = 0
    seeds: tuple[int, ...] = ()

    @property
    def n_params(self) -> int:
        """Trainable parameters of every component together."""
        return sum(c.n_params for c in self.components)

    def predict(self, X: np.ndarray) -> np.ndarray:  # noqa: D102
        return np.mean([c.predict(X) for c in self.components], axis=0)

    def paths(self, X: np.ndarray, horizon: int) -> np.ndarray:  # noqa: D102
        return np.mean([c.paths(X, horizon) for c in self.components], axis=0)

    def member_predictions(self, X: np.ndarray) -> np.ndarray:  # noqa: D102
        return np.empty((len(X), 0))

    def save(self, directory: Path, stem: str) -> dict[int, Path]:  # noqa: D102
        return {}


def _fit_naive(train: Windows, scaler: Scaler, options: FitOptions) -> Forecaster:
    return LastValue()


def _fit_drift(train: Windows, scaler: Scaler, options: FitOptions) -> Forecaster:
    return Drift(mean_log_return=fit_drift(train))


def _fit_combination(train: Windows, scaler: Scaler, options: FitOptions) -> Forecaster:
    raise ValueError(
        "mean is not fitted: it combines fitted models (tasks.models.train.combine_fits)"
    )


def _network_fitter(name: str, builder: KerasBuilder) -> Callable[..., Forecaster]:
    def fit(train: Windows, scaler: Scaler, options: FitOptions) -> Forecaster:
        # the members of one stacked fit (the backtest's path), exported to plain networks
        seeds = range(options.seed, options.seed + options.seeds)
        members = [Member(s, len(train), scaler, f"seed {s}") for s in seeds]
        stacked = fit_stacked(
            name,
            builder,
            train,
            members,
            epochs=options.epochs,
            batch_size=options.batch_size,
            report=options.report,
        )
        networks = tuple(Network(stacked.export(g), scaler, s, name) for g, s in enumerate(seeds))
        return Ensemble(networks, options.epochs)

    return fit


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: how to fit the model, and for networks the builder that stacks."""

    name: str
    fit: Callable[[Windows, Scaler, FitOptions], Forecaster]
    builder: KerasBuilder | None = None  # None: a baseline, cheap enough to fit one by one
    # a combination of the run's other models (``core.settings.mean_components``), not fitted
    combine: Callable[[tuple[Forecaster, ...]], Forecaster] | None = None


REGISTRY: dict[str, ModelSpec] = {
    "naive": ModelSpec("naive", _fit_naive),
    "drift": ModelSpec("drift", _fit_drift),
    "mean": ModelSpec("mean", _fit_combination, combine=Combination),
    **{
        name: ModelSpec(name, _network_fitter(name, builder), builder)
        for name, builder in KERAS_BUILDERS.items()
    },
}


def is_combination(name: str) -> bool:
    """Whether ``name`` combines the run's other models (``mean``) instead of being fitted."""
    return model_spec(name).combine is not None


def model_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``, a plain name or a spec such as ``lstm[units=64]``.

    A spec's network is the base network built with the spec's sizes; it trains, stacks
    and saves like any other. ``name`` is used as given (settings pass canonical names).

    Raises:
        ValueError: no such model, or a bad spec.
    """
    if name in REGISTRY:
        return REGISTRY[name]
    spec = parse_spec(name)
    if not spec.params:  # a spelling of a plain model, e.g. lstm[units=32]
        return REGISTRY[spec.base]
    builder = functools.partial(KERAS_BUILDERS[spec.base], **spec.params)
    return ModelSpec(name, _network_fitter(name, builder), builder)
