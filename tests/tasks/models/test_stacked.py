from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from core.errors import PipelineError
from tasks.data.windows import Windows, fit_scaler, make_windows
from tasks.models.registry import KERAS_BUILDERS, model_spec
from tasks.models.stacked import (
    Member,
    MemberAdam,
    SlotSchedule,
    batches_per_epoch,
    build_stacked,
    check_finite,
    compile_with_xla,
    fit_stacked,
    plan_slots,
    stack_template,
    training_arrays,
)

PARAMS = {"simple_rnn": 1633, "gru": 3905, "lstm": 4897, "conv1d_lstm": 8993}


def series_windows(n: int = 70, seed: int = 5) -> Windows:
    close = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0.005, 0.04, n)))
    return make_windows(close, pd.date_range("2000-01-01", periods=n, freq="MS"), 12)


def members_of(windows: Windows, cuts: list[int], seeds: list[int]) -> list[Member]:
    return [
        Member(seed, cut, fit_scaler("window", windows.part(0, cut)), f"origin {k}")
        for k, (cut, seed) in enumerate(zip(cuts, seeds, strict=True))
    ]


@pytest.mark.parametrize(
    ("n_samples", "batch_size", "expected"),
    [(724, 32, 23), (64, 32, 2), (65, 32, 3), (5, 32, 1), (0, 32, 1)],
)
@pytest.mark.unit
def test_batches_per_epoch(n_samples: int, batch_size: int, expected: int) -> None:
    assert batches_per_epoch(n_samples, batch_size) == expected


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(KERAS_BUILDERS))
def test_every_member_exports_to_the_registry_network(name: str, float64: None) -> None:
    """Same weights layout and parameter count; member g predicts as the plain network does."""
    windows = series_windows()
    fit = build_stacked(
        name, KERAS_BUILDERS[name], 12, members_of(windows, [30, 40, 50], [1, 2, 3])
    )
    template = KERAS_BUILDERS[name](12, 0)
    assert template.count_params() == fit.n_params == PARAMS[name]
    assert fit.network.count_params() == 3 * PARAMS[name]
    shapes = [w.shape for w in fit.network.get_weights()]
    assert shapes == [(3, *w.shape) for w in template.get_weights()]
    # random weights everywhere (biases too), so no gate or bias can hide behind zeros
    rng = np.random.default_rng(0)
    fit.network.set_weights([rng.normal(0, 0.4, s) for s in shapes])
    inputs = rng.normal(0, 1, (9, 3, 12, 1))
    stacked = keras.ops.convert_to_numpy(fit.network(inputs))
    assert stacked.shape == (9, 3)
    for g in range(3):
        plain = fit.export(g)
        assert type(plain) is type(template)
        assert [type(a) for a in plain.layers] == [type(b) for b in template.layers]
        single = keras.ops.convert_to_numpy(plain(inputs[:, g])).reshape(-1)
        assert single.dtype == np.float64
        np.testing.assert_allclose(stacked[:, g], single, rtol=1e-9, atol=1e-12)


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(KERAS_BUILDERS))
def test_each_member_starts_from_the_registry_networks_seeded_initialisation(name) -> None:
    windows = series_windows()
    seeds = [42, 7, 42, 7]  # members of one seed share its registry network's weights
    fit = build_stacked(
        name, KERAS_BUILDERS[name], 12, members_of(windows, [30, 40, 35, 25], seeds)
    )
    for g, seed in enumerate(seeds):
        expected = KERAS_BUILDERS[name](12, seed).get_weights()
        for ours, theirs in zip(fit.member_weights(g), expected, strict=True):
            np.testing.assert_array_equal(ours, theirs)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (keras.layers.Dropout(0.1), "no stacked form for layer Dropout"),
        (keras.layers.LSTM(4, return_sequences=True), "only last-state"),
        (keras.layers.GRU(4, reset_after=False), "only reset_after=True"),
        (keras.layers.Conv1D(4, 3, padding="same"), "only causal"),
    ],
)
def test_a_layer_without_a_stacked_form_is_refused(layer, message) -> None:
    inputs = keras.Input((12, 1))
    x = layer(inputs)
    if len(x.shape) == 3:
        x = keras.layers.LSTM(2)(x)
    template = keras.Model(inputs, keras.layers.Dense(1)(x), name="custom")
    with pytest.raises(TypeError, match=message):
        stack_template(template, 2)


@pytest.mark.unit
def test_a_member_sees_nothing_after_its_cut() -> None:
    windows = series_windows()
    members = members_of(windows, [20, 35], [1, 1])
    fit = build_stacked("lstm", KERAS_BUILDERS["lstm"], 12, members)
    inputs, targets = training_arrays(fit, windows)
    assert inputs.shape == (35, 2, 12, 1)
    assert targets.shape == (35, 2, 2)
    assert targets[:, 0, 1].tolist() == [1.0] * 20 + [0.0] * 15
    assert not inputs[20:, 0].any()
    assert not targets[20:, 0].any()
    # each member's own scaler: member 0's targets use the scale of its 20 samples only
    np.testing.assert_allclose(
        targets[:20, 0, 0], members[0].scaler.transform_y(windows.y[:20], windows.X[:20])
    )
    assert members[0].scaler != members[1].scaler


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gru", "conv1d_lstm"])  # every layer type; G = 1 tests the rest
def test_a_member_trains_as_a_separate_fit_on_its_own_samples(name: str, float64: None) -> None:
    """Full batches: each member's updates are those of a one-member fit of its own data."""
    windows = series_windows()
    cuts, seeds = [25, 40, 57], [4, 5, 6]
    members = members_of(windows, cuts, seeds)
    stacked = fit_stacked(name, KERAS_BUILDERS[name], windows, members, epochs=3, batch_size=64)
    for g, member in enumerate(members):
        alone = fit_stacked(
            name,
            KERAS_BUILDERS[name],
            windows.part(0, member.samples),
            [member],
            epochs=3,
            batch_size=64,
        )
        for ours, theirs in zip(stacked.member_weights(g), alone.member_weights(0), strict=True):
            np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


class _BrokenScaler:
    """Scales like a window scaler but turns every target into NaN."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def transform_X(self, X):
        return self.inner.transform_X(X)

    def transform_y(self, y, X):
        return np.full(len(y), np.nan, dtype=np.float32)

    def inverse_y(self, y_scaled, X):
        return self.inner.inverse_y(y_scaled, X)


@pytest.mark.slow
def test_a_member_whose_loss_turns_nan_fails_naming_model_and_origin() -> None:
    windows = series_windows()
    good, bad = members_of(windows, [30, 40], [1, 1])
    bad = Member(bad.seed, bad.samples, _BrokenScaler(bad.scaler), "origin 2003-04")
    with pytest.raises(
        PipelineError, match=r"^gru: training diverged \(NaN loss\) for origin 2003-04$"
    ):
        fit_stacked("gru", KERAS_BUILDERS["gru"], windows, [good, bad], epochs=1, batch_size=16)


@pytest.mark.unit
def test_check_finite_names_every_diverged_member() -> None:
    windows = series_windows()
    fit = build_stacked(
        "simple_rnn", KERAS_BUILDERS["simple_rnn"], 12, members_of(windows, [20, 30, 40], [1, 2, 3])
    )
    check_finite(fit)  # a fresh network is finite
    weights = fit.network.get_weights()
    weights[0][0, 0, 0] = np.nan
    weights[-1][2, 0] = np.inf
    fit.network.set_weights(weights)
    with pytest.raises(PipelineError, match=r"simple_rnn: .* for origin 0, origin 2$"):
        check_finite(fit)


@pytest.mark.unit
def test_no_members_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        build_stacked("gru", KERAS_BUILDERS["gru"], 12, [])


@pytest.mark.unit
def test_a_variant_stacks_and_exports_like_its_base(float64: None) -> None:
    variant = model_spec("conv1d_lstm[filters=64,kernel_size=5]")
    windows = series_windows()
    fit = build_stacked(variant.name, variant.builder, 12, members_of(windows, [30, 40], [1, 2]))
    assert fit.n_params == 13_345
    rng = np.random.default_rng(1)
    shapes = [w.shape for w in fit.network.get_weights()]
    fit.network.set_weights([rng.normal(0, 0.4, s) for s in shapes])
    inputs = rng.normal(0, 1, (5, 2, 12, 1))
    stacked = keras.ops.convert_to_numpy(fit.network(inputs))
    for g in range(2):
        single = keras.ops.convert_to_numpy(fit.export(g)(inputs[:, g])).reshape(-1)
        np.testing.assert_allclose(stacked[:, g], single, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("steps", "pack", "expected"),
    [
        ([3, 2, 1], True, [[0], [1, 2]]),
        ([3, 2, 1], False, [[0], [1], [2]]),
        ([1, 3, 1, 1, 2], True, [[1], [4, 0], [2, 3]]),  # largest first, stable among equals
        ([29, 23, 10, 19, 6], True, [[0], [1, 4], [3, 2]]),
        ([5, 5, 5], True, [[0], [1], [2]]),  # equal members cannot share
    ],
)
@pytest.mark.unit
def test_members_with_few_steps_share_a_slot(steps, pack, expected) -> None:
    slots = plan_slots(steps, pack)
    assert slots == expected
    assert sorted(g for slot in slots for g in slot) == list(range(len(steps)))
    assert all(sum(steps[g] for g in slot) <= max(steps) for slot in slots)


@pytest.mark.unit
def test_no_member_computes_a_step_without_samples_of_its_own() -> None:
    """Count the rows each member computes: its own samples, once an epoch, on its own steps."""
    samples, batch, epochs = [10, 7, 3, 6], 4, 3
    schedule = SlotSchedule(samples, batch, epochs, seed=1)
    assert schedule.slots == [[0], [1, 2], [3]]  # 3, 2, 1 and 2 steps; 7's and 3's share
    rows = schedule.rows(0, schedule.length)
    sample, member = rows.reshape(2, schedule.length, batch, -1)  # (step, row, slot)
    for g, n in enumerate(samples):
        mine = member == g
        steps_with_rows = mine.any(axis=1)  # (step, slot)
        assert steps_with_rows.sum() == epochs * schedule.steps[g]  # a separate fit's steps
        assert (mine.sum(axis=1)[steps_with_rows] > 0).all()  # never a step without a row
        own = sample[mine].reshape(epochs, n)  # in step order: epoch after epoch
        for e in range(epochs):
            assert sorted(own[e]) == list(range(n))  # its own samples, once an epoch
    assert not ((member >= 0) & (sample < 0)).any()
    # packing moves members between slots, not their batches
    alone = SlotSchedule(samples, batch, epochs, seed=1, pack=False)
    for g in range(len(samples)):
        for e in range(epochs):
            np.testing.assert_array_equal(alone.perms[g][e], schedule.perms[g][e])
    assert not np.array_equal(schedule.perms[0][0], schedule.perms[0][1])  # reshuffled
    again = SlotSchedule(samples, batch, epochs, seed=1)
    np.testing.assert_array_equal(again.rows(0, schedule.length), rows)  # the seed fixes it


@pytest.mark.parametrize(
    ("slots", "steps", "expected"),
    [(49, 60 * 29, True), (300, 60 * 29, True), (1, 10**6, False), (4, 3 * 8, False)],
)
@pytest.mark.unit
def test_only_a_large_fit_pays_for_xla(slots: int, steps: int, expected: bool) -> None:
    """The run's fits (49 slots, 60 epochs of 29 steps) compile; one member or a test's don't."""
    assert compile_with_xla(slots, steps) is expected


@pytest.mark.unit
def test_fit_calls_start_at_each_epoch_and_each_change_of_member() -> None:
    schedule = SlotSchedule([10, 7, 3], 4, epochs=2, seed=0)  # steps 3, 2, 1: [[0], [1, 2]]
    assert schedule.length == 6
    assert schedule.boundaries() == [0, 3, 4]  # member 2 starts after member 1's 2 x 2 steps
    assert schedule.starting(4) == [2]


@pytest.mark.slow
def test_members_packed_into_slots_train_as_with_a_slot_each(float64: None) -> None:
    """Members of unequal sizes end with the same weights whether they share a slot or not."""
    windows = series_windows()
    members = members_of(windows, [57, 25, 30, 12], [4, 5, 6, 7])  # 8, 4, 4 and 2 steps of 8
    fits = {
        pack: fit_stacked(
            "lstm", KERAS_BUILDERS["lstm"], windows, members, epochs=3, batch_size=8, pack=pack
        )
        for pack in (True, False)
    }
    assert SlotSchedule([m.samples for m in members], 8, 3, 4).slots == [[0], [1, 2], [3]]
    for g in range(len(members)):
        packed, alone = fits[True].member_weights(g), fits[False].member_weights(g)
        for ours, theirs in zip(packed, alone, strict=True):
            np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    start = fits[True].member_weights(2)[0]
    assert not np.allclose(
        start, build_stacked("lstm", KERAS_BUILDERS["lstm"], 12, members[2:3]).member_weights(0)[0]
    )  # it trained


@pytest.mark.unit
def test_a_member_without_samples_in_a_step_stands_still_and_keeps_its_own_step_count() -> None:
    """Member 1 has samples in steps 1 and 4 only: it moves as Adam's steps 1 and 2 would.

    Plain Adam would move it in steps 2 and 3 too (its momentum) and correct its bias for
    four steps, not two.
    """
    steps = [np.array([[0.5, -1.0], [0.7, -0.2]]), np.array([[0.2, 0.1], [0.0, 0.0]])]
    steps += [np.array([[-0.3, 0.4], [0.0, 0.0]]), np.array([[0.1, 0.1], [0.3, 0.9]])]
    stacked = keras.Variable(np.ones((2, 2)), dtype="float32")
    optimizer = MemberAdam(2, learning_rate=0.1)
    alone = [keras.Variable(np.ones((1, 2)), dtype="float32") for _ in range(2)]
    plain = [keras.optimizers.Adam(learning_rate=0.1) for _ in range(2)]
    after_first = None
    for k, grad in enumerate(steps):
        optimizer.apply([keras.ops.convert_to_tensor(grad, "float32")], [stacked])
        for member in (0, 1):
            if grad[member].any():
                plain[member].apply([grad[member : member + 1].astype("float32")], [alone[member]])
        member_1 = keras.ops.convert_to_numpy(stacked)[1]
        if k == 0:
            after_first = member_1.copy()
        elif k < 3:  # no sample for member 1: it stands still
            np.testing.assert_array_equal(member_1, after_first)
    for member in (0, 1):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(stacked)[member],
            keras.ops.convert_to_numpy(alone[member])[0],
            rtol=1e-6,
        )
