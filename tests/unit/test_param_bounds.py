"""Every numeric parameter declares its valid range, and a value just outside it is refused
with an error naming the dotted key (so no setting silently trains nothing or yields NaN)."""

from __future__ import annotations

import math
import re
import types
import typing
from dataclasses import fields, is_dataclass

import pytest

from noisyflow.config import Params, parse_params, with_overrides
from noisyflow.errors import ParamsError
from noisyflow.methods import FAMILIES

BOUNDS = ("ge", "gt", "le", "lt")


def scalar_type(tp: typing.Any) -> typing.Any:
    """int / float for `int`, `float`, `int | None`, ...; None for anything else."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0] if len(args) == 1 else None
    return tp if tp in (int, float) else None


def numeric_fields(cls: type, prefix: str = "") -> list[tuple[str, type, dict]]:
    """(dotted key, int | float, metadata) of every numeric field under dataclass `cls`."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        tp, key = hints[f.name], f"{prefix}{f.name}"
        if is_dataclass(tp):
            out += numeric_fields(tp, f"{key}.")
        elif scalar_type(tp) is not None:
            meta = {k: v for k, v in f.metadata.items() if v is not None}
            out.append((key, scalar_type(tp), meta))
    return out


FIELDS = numeric_fields(Params)
BY_KEY = {key: (tp, meta) for key, tp, meta in FIELDS}


def test_the_walk_finds_the_schema_and_every_registry_entry():
    assert {"seed", "data.noise.rate", "train.epochs", "correct.min_confidence"} <= set(BY_KEY)
    for family in FAMILIES:
        for entry in family.entries():
            prefix = f"{family.section}.{entry.name}."
            own = numeric_fields(entry.params, prefix)
            assert {k for k, _, _ in own} <= set(BY_KEY), prefix


@pytest.mark.parametrize(("key", "tp", "meta"), FIELDS, ids=[k for k, _, _ in FIELDS])
def test_every_numeric_field_declares_a_range(key, tp, meta):
    assert any(b in meta for b in BOUNDS) or "choices" in meta, f"{key} has no declared range"


def _step(value: float, tp: type, direction: float) -> float:
    """The next representable value of type `tp` from `value` towards `direction`."""
    if tp is int:
        return int(value) + (1 if direction > 0 else -1)
    return math.nextafter(float(value), direction)


def _cast(value: float, tp: type) -> float:
    return int(value) if tp is int else float(value)


def cases() -> list[tuple[str, object, object | None]]:
    """(key, value just outside, value just inside or None) for every bound and choice set."""
    out = []
    for key, tp, meta in FIELDS:
        for bound in BOUNDS:
            if bound not in meta:
                continue
            b = meta[bound]
            if bound == "ge":
                out.append((key, _step(b, tp, -math.inf), _cast(b, tp)))
            elif bound == "le":
                out.append((key, _step(b, tp, math.inf), _cast(b, tp)))
            elif bound == "gt":
                out.append((key, _cast(b, tp), _step(b, tp, math.inf)))
            else:  # lt
                out.append((key, _cast(b, tp), _step(b, tp, -math.inf)))
        if "choices" in meta:
            out.append((key, max(meta["choices"]) + 1, min(meta["choices"])))
    return out


CASES = cases()


@pytest.mark.parametrize(
    ("key", "outside", "inside"), CASES, ids=[f"{k}={v!r}" for k, v, _ in CASES]
)
def test_a_value_just_outside_the_range_is_refused_naming_the_key(key, outside, inside):
    base = parse_params({})
    with pytest.raises(ParamsError, match=rf"^{re.escape(key)}: ") as exc:
        with_overrides(base, {key: outside})
    assert repr(outside) in str(exc.value) or str(outside) in str(exc.value)
    # ... and the closest value on the valid side is accepted (the check is not off by one)
    accepted = with_overrides(base, {key: inside})
    node = accepted
    for part in key.split("."):
        node = getattr(node, part)
    assert node == inside


FLOATS = [key for key, tp, _ in FIELDS if tp is float]


@pytest.mark.parametrize("key", FLOATS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused_naming_the_key(key, value):
    with pytest.raises(ParamsError, match=rf"^{re.escape(key)}: must be a finite number"):
        with_overrides(parse_params({}), {key: value})
