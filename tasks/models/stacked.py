"""Stacked training: G independent copies of one registry network fitted as one Keras model.

Every weight of the registry's network gets a leading member axis. Member g of the stacked
model computes exactly what the registry network computes with weights ``w[g]`` (same layers,
gate equations, activations and causal padding), and members never mix: each member's
outputs depend only on its own weights and inputs, and each member's loss only on its own
samples. So one ``fit`` trains G networks for roughly the fixed cost of one. Members with
fewer steps per epoch share a slot of the network one after another (``SlotSchedule``), so
no member computes a step without samples of its own.

Inside the model, tensors are member-major, ``(G, batch, ...)``, so every product is a
batched ``matmul`` over the member axis. Only Keras 3 ops are used (backend-neutral).

Weight layout: the stacked model's ``get_weights()`` is the registry model's list with a
leading axis of size G, in the same order. Initialising a member is building the registry
network under its seed; exporting a member is the reverse, so saved files stay plain Keras.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import PipelineError
from tasks.data.windows import Scaler, Windows
from tasks.models.keras_quiet import keras, ops

Tensor = Any  # a Keras tensor: the backend's own type, so nothing narrower to say
KerasBuilder = Callable[[int, int], keras.Model]
"""``builder(window, seed)``: the same seed always gives the same initial weights."""


def _matmul(x: Tensor, w: Tensor) -> Tensor:
    """``(G, N, i) @ (G, i, o) -> (G, N, o)``; one member takes the plain 2-D kernel."""
    if w.shape[0] == 1:
        return ops.expand_dims(ops.matmul(x[0], w[0]), 0)
    return ops.matmul(x, w)


def _batched(x: Tensor, w: Tensor) -> Tensor:
    """``(G, B, ..., i) @ (G, i, o) -> (G, B, ..., o)``: each member by its own matrix."""
    shape = ops.shape(x)
    flat = ops.reshape(x, (shape[0], -1, shape[-1]))
    out = _matmul(flat, w)
    return ops.reshape(out, (*shape[:-1], ops.shape(w)[-1]))


class StackedDense(keras.layers.Layer):
    """G Dense layers: ``(G, B, i) -> (G, B, units)``."""

    def __init__(self, members: int, units: int, activation: str | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.members, self.units = members, units
        self.activation = keras.activations.get(activation)

    def build(self, input_shape: tuple[int | None, ...]) -> None:  # noqa: D102
        g, i = self.members, input_shape[-1]
        self.kernel = self.add_weight(shape=(g, i, self.units), initializer="zeros", name="kernel")
        self.bias = self.add_weight(shape=(g, self.units), initializer="zeros", name="bias")

    def call(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.activation(_batched(x, self.kernel) + self.bias[:, None, :])


class StackedCausalConv1D(keras.layers.Layer):
    """G causal Conv1D layers (stride 1, no dilation): ``(G, B, T, C) -> (G, B, T, filters)``."""

    def __init__(
        self, members: int, filters: int, kernel_size: int, activation: str | None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.members, self.filters, self.kernel_size = members, filters, kernel_size
        self.activation = keras.activations.get(activation)

    def build(self, input_shape: tuple[int | None, ...]) -> None:  # noqa: D102
        g, c, k = self.members, input_shape[-1], self.kernel_size
        self.kernel = self.add_weight(shape=(g, k, c, self.filters), initializer="zeros")
        self.bias = self.add_weight(shape=(g, self.filters), initializer="zeros")

    def call(self, x: Tensor) -> Tensor:  # noqa: D102
        k = self.kernel_size
        steps = ops.shape(x)[2]
        # causal: k - 1 zeros before the first month, so step t sees months t-k+1 … t only
        padded = ops.pad(x, ((0, 0), (0, 0), (k - 1, 0), (0, 0)))
        out = self.bias[:, None, None, :]
        for j in range(k):
            out = out + _batched(padded[:, :, j : j + steps, :], self.kernel[:, j])
        return self.activation(out)


class _StackedRecurrent(keras.layers.Layer):
    """Base of the G-member recurrent layers; returns the last hidden state ``(G, B, units)``."""

    gates = 1

    def __init__(
        self,
        members: int,
        units: int,
        activation: str,
        recurrent_activation: str | None = None,  # gated cells only
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.members, self.units = members, units
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)

    def bias_shape(self) -> tuple[int, ...]:
        """Per-member shape of the bias, as the Keras cell stores it."""
        return (self.gates * self.units,)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        g, i, width = self.members, input_shape[-1], self.gates * self.units
        self.kernel = self.add_weight(shape=(g, i, width), initializer="zeros", name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(g, self.units, width), initializer="zeros", name="recurrent_kernel"
        )
        self.bias = self.add_weight(shape=(g, *self.bias_shape()), initializer="zeros", name="bias")

    def input_bias(self) -> Tensor:
        """Bias added to the input projection, shape ``(G, gates * units)``."""
        return self.bias

    def call(self, x: Tensor) -> Tensor:
        # the input projection of every step at once, then the recurrence step by step
        projected = _batched(x, self.kernel) + self.input_bias()[:, None, None, :]
        batch = ops.shape(x)[1]
        state = self.initial_state(batch)
        # unstack once: the gradient of a stack is cheap, that of T strided slices is not
        for x_t in ops.unstack(projected, axis=2):
            state = self.step(x_t, state)
        return state[0]

    def initial_state(self, batch: Tensor) -> tuple[Tensor, ...]:
        """Zero hidden state ``(G, B, units)``."""
        return (ops.zeros((self.members, batch, self.units)),)

    def step(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """One time step from the projected input ``(G, B, gates * units)``."""
        raise NotImplementedError


class StackedSimpleRNN(_StackedRecurrent):
    """G SimpleRNN layers: ``h = activation(x W + b + h U)``."""

    def step(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:  # noqa: D102
        return (self.activation(x_t + _matmul(state[0], self.recurrent_kernel)),)


class StackedGRU(_StackedRecurrent):
    """G GRU layers in Keras 3's ``reset_after=True`` form (gate order z, r, h).

    ``z = sigmoid(x W_z + b_z + h U_z + c_z)``, ``r = sigmoid(x W_r + b_r + h U_r + c_r)``,
    ``ĥ = tanh(x W_h + b_h + r ⊙ (h U_h + c_h))``, ``h' = z ⊙ h + (1 - z) ⊙ ĥ``;
    ``b`` is the input bias (row 0 of Keras's ``(2, 3u)`` bias), ``c`` the recurrent one.
    """

    gates = 3

    def bias_shape(self) -> tuple[int, ...]:  # noqa: D102
        return (2, self.gates * self.units)

    def input_bias(self) -> Tensor:  # noqa: D102
        return self.bias[:, 0, :]

    def step(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:  # noqa: D102
        h, u = state[0], self.units
        inner = _matmul(h, self.recurrent_kernel) + self.bias[:, 1, None, :]
        # both gates by one activation over their 2u columns: under XLA about 0.55-0.75x the
        # time per step of splitting x_t and inner into three each (docs/stacking.md)
        gates = self.recurrent_activation(x_t[..., : 2 * u] + inner[..., : 2 * u])
        z, r = gates[..., :u], gates[..., u:]
        candidate = self.activation(x_t[..., 2 * u :] + r * inner[..., 2 * u :])
        return (z * h + (1.0 - z) * candidate,)


class StackedLSTM(_StackedRecurrent):
    """G LSTM layers (gate order i, f, c, o).

    ``z = x W + b + h U`` split into four; ``c' = sigmoid(z_f) ⊙ c + sigmoid(z_i) ⊙ tanh(z_c)``
    and ``h' = sigmoid(z_o) ⊙ tanh(c')``.
    """

    gates = 4

    def initial_state(self, batch: Tensor) -> tuple[Tensor, ...]:  # noqa: D102
        zeros = ops.zeros((self.members, batch, self.units))
        return (zeros, zeros)

    def step(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:  # noqa: D102
        h, c = state
        z = x_t + _matmul(h, self.recurrent_kernel)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        c = self.recurrent_activation(z_f) * c + self.recurrent_activation(z_i) * self.activation(
            z_c
        )
        return (self.recurrent_activation(z_o) * self.activation(c), c)


def _rnn_args(layer: keras.layers.Layer, names: Sequence[str]) -> dict[str, object]:
    config = layer.get_config()
    if config.get("return_sequences") or config.get("go_backwards") or config.get("stateful"):
        raise TypeError(f"{layer.name}: only last-state, forward, stateless RNNs stack")
    if config.get("dropout") or config.get("recurrent_dropout") or not config.get("use_bias"):
        raise TypeError(f"{layer.name}: dropout or a missing bias has no stacked form")
    return {name: config[name] for name in names}


def _stack_simple_rnn(layer: keras.layers.Layer, g: int) -> keras.layers.Layer:
    return StackedSimpleRNN(g, **_rnn_args(layer, ("units", "activation")))  # type: ignore[arg-type]


def _stack_gru(layer: keras.layers.Layer, g: int) -> keras.layers.Layer:
    if not layer.get_config().get("reset_after"):
        raise TypeError(f"{layer.name}: only reset_after=True GRUs stack")
    return StackedGRU(g, **_rnn_args(layer, ("units", "activation", "recurrent_activation")))  # type: ignore[arg-type]


def _stack_lstm(layer: keras.layers.Layer, g: int) -> keras.layers.Layer:
    return StackedLSTM(g, **_rnn_args(layer, ("units", "activation", "recurrent_activation")))  # type: ignore[arg-type]


def _stack_conv1d(layer: keras.layers.Layer, g: int) -> keras.layers.Layer:
    config = layer.get_config()
    plain = (
        config["padding"] == "causal"
        and tuple(config["strides"]) == (1,)
        and tuple(config["dilation_rate"]) == (1,)
        and config["groups"] == 1
        and config["use_bias"]
    )
    if not plain:
        raise TypeError(f"{layer.name}: only causal, stride-1, undilated Conv1D layers stack")
    (kernel_size,) = config["kernel_size"]
    return StackedCausalConv1D(g, config["filters"], kernel_size, config["activation"])


def _stack_dense(layer: keras.layers.Layer, g: int) -> keras.layers.Layer:
    config = layer.get_config()
    if not config["use_bias"]:
        raise TypeError(f"{layer.name}: a Dense layer without bias has no stacked form")
    return StackedDense(g, config["units"], config["activation"])


STACKERS: dict[type, Callable[[keras.layers.Layer, int], keras.layers.Layer]] = {
    keras.layers.SimpleRNN: _stack_simple_rnn,
    keras.layers.GRU: _stack_gru,
    keras.layers.LSTM: _stack_lstm,
    keras.layers.Conv1D: _stack_conv1d,
    keras.layers.Dense: _stack_dense,
}


class StackedNetwork(keras.Model):
    """G copies of a chain of layers; inputs ``(B, G, T, C)``, outputs ``(B, G)``."""

    def __init__(self, layers: list[keras.layers.Layer], **kwargs) -> None:
        super().__init__(**kwargs)
        self.chain = layers

    def call(self, inputs: Tensor) -> Tensor:  # noqa: D102
        x = ops.transpose(inputs, (1, 0, 2, 3))  # member-major
        for layer in self.chain:
            x = layer(x)
        return ops.transpose(ops.squeeze(x, axis=-1), (1, 0))


def stack_template(template: keras.Model, members: int) -> StackedNetwork:
    """Build the G-member stacked form of a registry network (weights zero until set).

    Raises:
        TypeError: the network has a layer (or layer option) with no stacked form.
    """
    if template.output_shape[1:] != (1,):
        raise TypeError(f"{template.name}: stacking needs one output per sample")
    layers = []
    for layer in template.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        stacker = STACKERS.get(type(layer))
        if stacker is None:
            raise TypeError(f"{template.name}: no stacked form for layer {type(layer).__name__}")
        layers.append(stacker(layer, members))
    network = StackedNetwork(layers, name=f"stacked_{template.name}")
    window, channels = template.input_shape[1:]
    network(np.zeros((1, members, window, channels), dtype=keras.config.floatx()))  # builds
    return network


def masked_member_loss(y_true: Tensor, y_pred: Tensor) -> Tensor:
    """Sum over members of each member's mean squared error on its own samples of the batch.

    ``y_true`` is ``(B, G, 2)``: the scaled target and a 0/1 weight saying whether the sample
    is in that member's training data. Each member's errors are averaged over its own samples
    in the batch, as a separate fit averages over its batch, so members with fewer samples
    are not pulled by the others' months; a sample outside a member adds exactly zero.
    """
    target, weight = y_true[..., 0], y_true[..., 1]
    squared = ops.where(weight > 0, ops.square(y_pred - target), ops.zeros_like(target))
    count = ops.maximum(ops.sum(weight, axis=0), 1.0)
    return ops.sum(ops.sum(squared, axis=0) / count)


@dataclass(frozen=True)
class Member:
    """One member of a stacked fit: it trains on samples ``[0, samples)`` with its own scaler.

    ``label`` names it in logs and errors (e.g. the backtest origin's month).
    """

    seed: int
    samples: int
    scaler: Scaler
    label: str


@dataclass
class StackedFit:
    """A fitted stacked network, its members, and the time the fit took."""

    name: str
    builder: KerasBuilder
    network: StackedNetwork
    members: tuple[Member, ...]
    window: int
    n_params: int  # of one member, as the registry network counts them
    train_seconds: float = 0.0

    def inputs(self, X: np.ndarray) -> np.ndarray:
        """Raw windows ``(n, w)`` scaled by every member's scaler: ``(n, G, w, 1)``."""
        return np.stack([m.scaler.transform_X(X) for m in self.members], axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Every member's price forecast for each raw window: ``(n, G)``."""
        scaled = keras.ops.convert_to_numpy(self.network(self.inputs(X), training=False))
        return np.stack(
            [m.scaler.inverse_y(scaled[:, g], X) for g, m in enumerate(self.members)], axis=1
        )

    def member_weights(self, g: int) -> list[np.ndarray]:
        """Member ``g``'s weights in the registry network's order (copies of its slices only)."""
        return [keras.ops.convert_to_numpy(v.value[g]) for v in self.network.weights]

    def export(self, g: int) -> keras.Model:
        """Member ``g`` as the registry's standard Keras model (plain layers, no project code)."""
        model = self.builder(self.window, self.members[g].seed)
        model.set_weights(self.member_weights(g))
        return model


XLA_MIN_SLOT_STEPS = 20_000
"""A fit's step is compiled by XLA from this many slot-steps (slots x steps of the fit) on.

XLA fuses a stacked step's many small ops, 0.57-0.83x the milliseconds per step on 2
cores, but its compile adds 1-3 s (``benchmarks/results/profile_step.md``): the run's fits
(about 85,000 slot-steps per network) gain, a test's tiny fit would only pay.
"""


def compile_with_xla(slots: int, steps: int) -> bool:
    """Whether a fit of ``slots`` slots and ``steps`` steps is worth XLA's compile."""
    return slots > 1 and slots * steps >= XLA_MIN_SLOT_STEPS


def batches_per_epoch(n_samples: int, batch_size: int) -> int:
    """Number of training batches in one epoch of ``n_samples`` (the last one may be short)."""
    return max(1, math.ceil(n_samples / batch_size))


def initial_weights(builder: KerasBuilder, window: int, seed: int) -> list:
    """The registry network's initial weights under ``seed`` (what a separate fit starts from)."""
    return builder(window, seed).get_weights()


def build_stacked(
    name: str, builder: KerasBuilder, window: int, members: Sequence[Member]
) -> StackedFit:
    """A stacked network whose member g starts from the registry network under its own seed."""
    if not members:
        raise ValueError("a stacked fit needs at least one member")
    template = builder(window, members[0].seed)  # also member 0's initialisation
    network = stack_template(template, len(members))
    # one registry network per seed: a backtest's 300 members have 5 seeds
    by_seed = {members[0].seed: template.get_weights()}
    for m in members[1:]:
        if m.seed not in by_seed:
            by_seed[m.seed] = initial_weights(builder, window, m.seed)
    per_member = [by_seed[m.seed] for m in members]
    network.set_weights([np.stack(ws) for ws in zip(*per_member, strict=True)])
    return StackedFit(
        name=name,
        builder=builder,
        network=network,
        members=tuple(members),
        window=window,
        n_params=template.count_params(),
    )


def training_arrays(fit: StackedFit, windows: Windows) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(n, G, w, 1)`` and targets ``(n, G, 2)`` (scaled target, member weight).

    A sample outside a member's data is zero in that member's inputs and target, so no value
    after its cut-off enters its computation at all, not even with a zero weight.
    """
    n = max(m.samples for m in fit.members)
    inputs = np.zeros((n, len(fit.members), fit.window, 1), dtype=keras.config.floatx())
    targets = np.zeros((n, len(fit.members), 2), dtype=keras.config.floatx())
    for g, m in enumerate(fit.members):
        X, y = windows.X[: m.samples], windows.y[: m.samples]
        inputs[: m.samples, g] = m.scaler.transform_X(X)
        targets[: m.samples, g, 0] = m.scaler.transform_y(y, X)
        targets[: m.samples, g, 1] = 1.0
    return inputs, targets


class _EpochReport(keras.callbacks.Callback):
    def __init__(self, report: Callable[[int, float], None], epochs: int, g: int) -> None:
        super().__init__()
        self.report, self.epochs, self.members = report, epochs, g
        self.every = max(1, epochs // 6)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        done = epoch + 1
        if done % self.every == 0 or done == self.epochs:
            loss = float((logs or {}).get("loss", math.nan)) / self.members  # mean of members
            self.report(done, loss)


def check_finite(fit: StackedFit) -> None:
    """Fail, naming the model and member, if any member's weights are no longer finite.

    Raises:
        PipelineError: a member diverged (its loss became NaN or infinite).
    """
    bad = set()
    for weights in fit.network.get_weights():
        flat = weights.reshape(len(fit.members), -1)
        bad.update(np.flatnonzero(~np.isfinite(flat).all(axis=1)).tolist())
    if bad:
        labels = ", ".join(fit.members[g].label for g in sorted(bad))
        raise PipelineError(f"{fit.name}: training diverged (NaN loss) for {labels}")


class MemberAdam(keras.optimizers.Adam):
    """Adam with a step count per slot, that leaves a slot alone on steps without samples.

    In a stacked fit of members with different numbers of samples, each slot trains its
    members one after another (``SlotSchedule``); a slot whose members are all done gets no
    rows, so its part of every gradient is exactly zero (the masked loss adds nothing for
    it). Plain Adam would still move it (its momentum) and count the step in its bias
    correction; here its weights, moments and step count stay as they are. When a slot's
    next member starts, ``restart`` zeroes the slot's moments and step count, so each member
    follows plain Adam's arithmetic on its own steps, as a separate fit of its samples would.
    """

    def __init__(self, members: int, **kwargs: object) -> None:
        """Adam's arguments; ``members`` is the size of every variable's leading axis."""
        super().__init__(**kwargs)
        self.members = members
        self._active: Tensor = None  # this step's members with a sample (set by ``apply``)

    def build(self, var_list: list) -> None:  # noqa: D102
        if self.built:
            return
        super().build(var_list)
        self._member_steps = self.add_variable(
            (self.members,), initializer="zeros", dtype="float32", name="member_steps"
        )

    def apply(self, grads: list, trainable_variables: list | None = None) -> None:  # noqa: D102
        variables = trainable_variables or self._trainable_variables
        if not self.built:
            self.build(variables)
        active = None
        for grad in grads:
            moved = ops.any(ops.not_equal(ops.reshape(grad, (self.members, -1)), 0), axis=1)
            active = moved if active is None else ops.logical_or(active, moved)
        self._member_steps.assign_add(ops.cast(active, "float32"))
        self._active = active
        super().apply(grads, trainable_variables)

    def restart(self, members: Sequence[int]) -> None:
        """Start ``members`` afresh: zero moments and step count (a new member takes the slot)."""
        for variable in [*self._momentums, *self._velocities, self._member_steps]:
            value = keras.ops.convert_to_numpy(variable)
            value[list(members)] = 0.0
            variable.assign(value)

    def update_step(self, gradient: Tensor, variable: Tensor, learning_rate: Tensor) -> None:
        """Adam's update per member, with the member's own step in the bias correction."""
        dtype = variable.dtype
        shape = (self.members,) + (1,) * (len(variable.shape) - 1)
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        active = ops.reshape(ops.cast(self._active, dtype), shape)
        local_step = ops.reshape(ops.maximum(ops.cast(self._member_steps, dtype), 1.0), shape)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), local_step)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        self.assign_add(m, active * ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(
            v, active * ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2)
        )
        self.assign_sub(
            variable,
            active * ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(v), self.epsilon)),
        )


def plan_slots(steps: Sequence[int], pack: bool = True) -> list[list[int]]:
    """Members per slot of a stacked network: a slot trains its members one after another.

    ``steps[g]`` is member g's steps per epoch. A slot holds members whose steps add up to
    at most the largest member's, so the fit takes as many steps as that member's fit and a
    slot computes a member's step on every step, until its members are done (first fit
    decreasing; members in a slot come largest first). ``pack=False`` gives every member a
    slot of its own (the members with fewer steps then idle at the end of each epoch).
    """
    capacity = max(steps)
    order = sorted(range(len(steps)), key=lambda g: -steps[g])  # stable
    slots: list[list[int]] = []
    room: list[int] = []
    for g in order:
        j = next((j for j, free in enumerate(room) if pack and steps[g] <= free), None)
        if j is None:
            slots.append([g])
            room.append(capacity - steps[g])
        else:
            slots[j].append(g)
            room[j] -= steps[g]
    return slots


class SlotSchedule:
    """Every step of a stacked fit: which member each slot trains, on which rows of its own.

    Member g trains ``epochs * steps_g`` steps, ``steps_g = ceil(samples_g / B)`` per epoch,
    each epoch on a new permutation of its own samples ``[0, samples_g)`` in batches of B:
    the steps a separate fit of its samples takes. Slot j runs its members (``plan_slots``)
    one after another: member g on fit steps ``[start_g, start_g + epochs * steps_g)``. Only
    a slot whose members are all done computes rows of no member (weight 0); no member ever
    computes a step without samples of its own. The permutations are drawn epoch by epoch
    in the members' order, so packing does not change any member's batches.
    """

    def __init__(
        self, samples: Sequence[int], batch_size: int, epochs: int, seed: int, pack: bool = True
    ) -> None:
        """One schedule for members with ``samples``, batches of ``batch_size``."""
        self.samples, self.batch_size, self.epochs = list(samples), batch_size, epochs
        self.steps = [batches_per_epoch(n, batch_size) for n in self.samples]
        self.steps_per_epoch = max(self.steps)  # of the fit: the largest member's
        self.length = epochs * self.steps_per_epoch
        self.slots = plan_slots(self.steps, pack)
        self.slot_of, self.start = [0] * len(self.samples), [0] * len(self.samples)
        self._starting: dict[int, list[int]] = {}
        for j, slot in enumerate(self.slots):
            begin = 0
            for g in slot:
                self.slot_of[g], self.start[g] = j, begin
                self._starting.setdefault(begin, []).append(g)
                begin += epochs * self.steps[g]
        rng = np.random.default_rng(seed)
        # perms[g][e]: member g's rows in epoch e, padded with -1 to steps_g * B
        self.perms = [[np.full(s * batch_size, -1) for _ in range(epochs)] for s in self.steps]
        for e in range(epochs):
            for g, n in enumerate(self.samples):
                self.perms[g][e][:n] = rng.permutation(n)

    def boundaries(self) -> list[int]:
        """Fit steps at which a fit call starts: each epoch of the fit, each change of member."""
        cuts = set(range(0, self.length, self.steps_per_epoch)) | set(self._starting)
        return sorted(c for c in cuts if c < self.length)

    def starting(self, t: int) -> list[int]:
        """The members whose training starts at fit step ``t``."""
        return list(self._starting.get(t, []))

    def rows(self, t0: int, t1: int) -> np.ndarray:
        """Row indices ``((t1 - t0) * B, slots)`` for fit steps ``[t0, t1)``, and the member.

        Returns an int array ``(2, (t1 - t0) * B, slots)``: each row's sample index in its
        member's data (-1: no sample) and the member (-1: none).
        """
        b = self.batch_size
        out = np.full((2, (t1 - t0) * b, len(self.slots)), -1)
        for g, steps in enumerate(self.steps):
            j, start = self.slot_of[g], self.start[g]
            # only the epochs of member g that overlap [t0, t1)
            for e in range(
                max(0, (t0 - start) // steps), min(self.epochs, -(-(t1 - start) // steps))
            ):
                first = start + e * steps  # fit step of this epoch's first batch
                lo, hi = max(first, t0), min(first + steps, t1)
                own = self.perms[g][e][(lo - first) * b : (hi - first) * b]
                out[0, (lo - t0) * b : (hi - t0) * b, j] = own
                out[1, (lo - t0) * b : (hi - t0) * b, j] = np.where(own >= 0, g, -1)
        return out


def _slot_arrays(
    inputs: np.ndarray, targets: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets per slot from ``SlotSchedule.rows`` (zero where no member has a row)."""
    sample, member = rows
    empty = member < 0
    x = inputs[np.maximum(sample, 0), np.maximum(member, 0)]
    y = targets[np.maximum(sample, 0), np.maximum(member, 0)]
    x[empty], y[empty] = 0.0, 0.0
    return x, y


def _load_slots(
    network: StackedNetwork, weights: list[np.ndarray], slots: dict[int, list[np.ndarray]]
) -> None:
    """Set slot j's weights to ``slots[j]`` (registry order) in ``weights``, the network's own."""
    for j, member in slots.items():
        for w, value in zip(weights, member, strict=True):
            w[j] = value
    network.set_weights(weights)


def fit_stacked(
    name: str,
    builder: KerasBuilder,
    windows: Windows,
    members: Sequence[Member],
    *,
    epochs: int,
    batch_size: int,
    report: Callable[[int, float], None] | None = None,
    pack: bool = True,
) -> StackedFit:
    """Fit G members of one network in one stacked Keras model, each on its own samples.

    Members that share their samples share their batches (Keras's shuffle, plain Adam:
    exactly a plain Keras fit when G = 1). Members with different numbers of samples take
    the steps a separate fit of their samples would take, on batches of their own, each
    scaled by its own scaler (``SlotSchedule``, ``MemberAdam``); members with few steps per
    epoch share a slot of the network one after another, so no member computes a step
    without samples (``pack=False``: a slot each, for comparison). A large fit's step is
    compiled by XLA (``compile_with_xla``).

    Raises:
        PipelineError: a member's loss became NaN (names the model and the member).
    """
    started = time.perf_counter()
    window = windows.X.shape[1]
    fit = build_stacked(name, builder, window, members)
    X, targets = training_arrays(fit, windows)
    keras.utils.set_random_seed(members[0].seed)  # the batch order
    sizes = [m.samples for m in members]
    if len(set(sizes)) == 1:
        _fit_shared(fit, X, targets, epochs, batch_size, report)
    else:
        _fit_slots(
            fit, X, targets, SlotSchedule(sizes, batch_size, epochs, members[0].seed, pack), report
        )
    fit.train_seconds = time.perf_counter() - started
    check_finite(fit)
    return fit


def _fit_shared(
    fit: StackedFit,
    X: np.ndarray,
    targets: np.ndarray,
    epochs: int,
    batch_size: int,
    report: Callable[[int, float], None] | None,
) -> None:
    """Members with the same samples: Keras's own shuffled batches, one compiled call an epoch."""
    fit.network.compile(
        optimizer=keras.optimizers.Adam(),
        loss=masked_member_loss,
        steps_per_execution=batches_per_epoch(len(X), batch_size),
        jit_compile=compile_with_xla(
            len(fit.members), epochs * batches_per_epoch(len(X), batch_size)
        ),
    )
    callbacks = [_EpochReport(report, epochs, len(fit.members))] if report else []
    fit.network.fit(
        X,
        targets,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )


def _fit_slots(
    fit: StackedFit,
    X: np.ndarray,
    targets: np.ndarray,
    schedule: SlotSchedule,
    report: Callable[[int, float], None] | None,
) -> None:
    """Members with their own batches, packed into slots; ``fit.network`` gets every member."""
    slots = len(schedule.slots)
    initial = fit.network.get_weights()  # every member's start, one copy
    template = fit.builder(fit.window, fit.members[0].seed)
    network = stack_template(template, slots)
    optimizer = MemberAdam(slots)
    network.compile(
        optimizer=optimizer,
        loss=masked_member_loss,
        steps_per_execution=schedule.steps_per_epoch,
        jit_compile=compile_with_xla(slots, schedule.length),
    )
    final: dict[int, list[np.ndarray]] = {}
    occupant: dict[int, int] = {}
    bounds = [*schedule.boundaries(), schedule.length]
    every = max(1, schedule.epochs // 6)
    for t0, t1 in itertools.pairwise(bounds):
        starting = schedule.starting(t0)
        if starting:
            weights = network.get_weights()
            for g in starting:  # the slot's previous member is done: keep its weights
                j = schedule.slot_of[g]
                if j in occupant:
                    final[occupant[j]] = [w[j].copy() for w in weights]
                occupant[j] = g
            _load_slots(
                network, weights, {schedule.slot_of[g]: [w[g] for w in initial] for g in starting}
            )
            if optimizer.built:
                optimizer.restart([schedule.slot_of[g] for g in starting])
        x, y = _slot_arrays(X, targets, schedule.rows(t0, t1))
        history = network.fit(
            x, y, batch_size=schedule.batch_size, shuffle=False, epochs=1, verbose=0
        )
        epoch = t1 // schedule.steps_per_epoch
        if (
            report
            and t1 % schedule.steps_per_epoch == 0
            and (epoch % every == 0 or t1 == schedule.length)
        ):
            report(epoch, float(history.history["loss"][-1]) / slots)
    weights = network.get_weights()
    for j, g in occupant.items():
        final[g] = [w[j].copy() for w in weights]
    fit.network.set_weights(
        [np.stack(ws) for ws in zip(*(final[g] for g in range(len(fit.members))), strict=True)]
    )
