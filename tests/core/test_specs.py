from __future__ import annotations

import pytest

from core.settings import Settings
from core.specs import canonical, parse_spec, split_specs

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("lstm", "lstm"),
        ("conv1d_lstm[kernel_size=5,filters=64]", "conv1d_lstm[filters=64,kernel_size=5]"),
        ("conv1d_lstm[filters=64, kernel_size=5]", "conv1d_lstm[filters=64,kernel_size=5]"),
        ("conv1d_lstm[filters=32,kernel_size=3]", "conv1d_lstm"),  # the defaults: plain name
        ("gru[units=64,dense_units=16]", "gru[units=64]"),
        ("simple_rnn[dense_units=8]", "simple_rnn[dense_units=8]"),
    ],
)
def test_specs_have_one_canonical_name(text: str, name: str) -> None:
    assert canonical(text) == name
    assert canonical(name) == name  # canonical names are fixed points


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prophet", "unknown model 'prophet'"),
        ("lstm[filters=64]", "unknown key 'filters' for lstm"),
        ("conv1d_lstm[padding=same]", "unknown key 'padding'"),  # causal stays causal
        ("naive[units=3]", "unknown key 'units' for naive"),
        ("lstm[units=0]", "units must be a positive integer"),
        ("lstm[units=-4]", "units must be a positive integer"),
        ("lstm[units=2.5]", "units must be a positive integer"),
        ("lstm[units=]", "units must be a positive integer"),
        ("lstm[units]", "expected key=value"),
        ("lstm[units=4,units=8]", "given twice"),
        ("lstm[units=4", "unbalanced bracket"),
        ("lstm]units=4[", "malformed model spec"),
        ("lstm[[units=4]]", "unbalanced bracket"),
    ],
)
def test_bad_specs_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        parse_spec(text)


def test_a_list_splits_only_outside_brackets() -> None:
    text = "lstm, conv1d_lstm[filters=64,kernel_size=5],naive"
    assert split_specs(text) == ["lstm", "conv1d_lstm[filters=64,kernel_size=5]", "naive"]
    with pytest.raises(ValueError, match="unbalanced"):
        split_specs("lstm[units=3,naive")


def test_settings_hold_canonical_names_and_refuse_two_spellings_of_one_model() -> None:
    settings = Settings(models="lstm,conv1d_lstm[kernel_size=5,filters=64]")
    assert settings.models == ("lstm", "conv1d_lstm[filters=64,kernel_size=5]")
    with pytest.raises(ValueError, match="a model is named twice"):
        Settings(models="conv1d_lstm,conv1d_lstm[filters=32]")
