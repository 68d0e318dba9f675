"""Model specs: ``name`` or ``name[key=value,...]``, parsed and named canonically.

A spec picks a registry model and, for a network, changes some of its sizes, e.g.
``conv1d_lstm[filters=64,kernel_size=5]``. The canonical form sorts the keys and drops
those equal to their defaults, so two spellings of one network are one model, and a spec
equal to the defaults is the plain name. Pure Python: settings validate specs with it
before anything heavy is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

RECURRENT = {"units": 32, "dense_units": 16}
#: The keys each model accepts, with their defaults. Padding is not a key: the
#: convolution stays causal whatever the spec says.
KEYS: dict[str, dict[str, int]] = {
    "naive": {},
    "drift": {},
    "simple_rnn": dict(RECURRENT),
    "gru": dict(RECURRENT),
    "lstm": dict(RECURRENT),
    "conv1d_lstm": {**RECURRENT, "filters": 32, "kernel_size": 3},
    "mean": {},
}
MAX_VALUE = 4096
_SPEC = re.compile(r"^([a-z0-9_]+)(?:\[(.*)\])?$", re.DOTALL)


@dataclass(frozen=True)
class ModelSpecText:
    """A parsed spec: the registry model and the keys that differ from its defaults."""

    base: str
    params: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The canonical name: keys sorted, defaults dropped; the plain name if none left."""
        if not self.params:
            return self.base
        inside = ",".join(f"{k}={self.params[k]}" for k in sorted(self.params))
        return f"{self.base}[{inside}]"


def split_specs(text: str) -> list[str]:
    """Split a comma-separated list of specs at the commas outside brackets.

    Raises:
        ValueError: a bracket is unbalanced.
    """
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "[":
            depth += 1
            if depth > 1:
                raise ValueError(f"unbalanced bracket in {text!r}")
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced bracket in {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise ValueError(f"unbalanced bracket in {text!r}")
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def parse_spec(text: str) -> ModelSpecText:
    """Parse one spec such as ``lstm`` or ``conv1d_lstm[kernel_size=5,filters=64]``.

    Raises:
        ValueError: unknown model or key, a value that is not a positive integer, a key
            given twice, or malformed brackets.
    """
    text = text.strip()
    if text.count("[") != text.count("]"):
        raise ValueError(f"unbalanced bracket in {text!r}")
    match = _SPEC.match(text)
    if not match:
        raise ValueError(f"malformed model spec {text!r}; use name or name[key=value,...]")
    base, inside = match.group(1), match.group(2)
    if base not in KEYS:
        raise ValueError(f"unknown model {base!r}; choose from {', '.join(KEYS)}")
    params: dict[str, int] = {}
    if inside is not None:
        if "[" in inside or "]" in inside:
            raise ValueError(f"unbalanced bracket in {text!r}")
        for item in [i.strip() for i in inside.split(",")]:
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key:
                raise ValueError(f"{text!r}: expected key=value, got {item!r}")
            if key not in KEYS[base]:
                allowed = ", ".join(KEYS[base]) or "none"
                raise ValueError(f"{text!r}: unknown key {key!r} for {base} (keys: {allowed})")
            if key in params:
                raise ValueError(f"{text!r}: key {key!r} given twice")
            if not value.isdigit() or not 1 <= int(value) <= MAX_VALUE:
                raise ValueError(
                    f"{text!r}: {key} must be a positive integer up to {MAX_VALUE}, got {value!r}"
                )
            params[key] = int(value)
    kept = {k: v for k, v in params.items() if v != KEYS[base][k]}
    return ModelSpecText(base, kept)


def canonical(text: str) -> str:
    """The canonical name of one spec (see ``parse_spec``)."""
    return parse_spec(text).name
