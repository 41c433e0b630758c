"""Plain YAML trees -> frozen dataclasses, with every check in one place.

Fields declare their valid values with `param(default, ge=..., lt=..., choices=...)`; `build`
checks type, range and choice of every key and rejects unknown keys naming the nearest valid one,
so a typo or an out-of-range value never silently trains something else.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from dataclasses import MISSING, asdict, field, fields, is_dataclass
from typing import Any

from noisyflow.errors import ParamsError

Bound = float | int | None


def param(
    default: Any = MISSING,
    *,
    ge: Bound = None,
    gt: Bound = None,
    le: Bound = None,
    lt: Bound = None,
    choices: tuple[Any, ...] | None = None,
    factory: Any = None,
) -> Any:
    """A dataclass field with its valid range (ge/gt/le/lt) or set of `choices`."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def build(cls: type, raw: Any, prefix: str = "") -> Any:
    """Build dataclass `cls` from a mapping; ParamsError names the dotted key on any problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{prefix.rstrip('.') or 'params'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in known:
            near = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean '{prefix}{near[0]}'?)" if near else ""
            raise ParamsError(f"unknown key '{prefix}{key}'{hint}")
    kwargs = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        kwargs[key] = _coerce(hints[key], value, name)
        check_value(name, kwargs[key], known[key].metadata)
    try:
        return cls(**kwargs)
    except ParamsError:
        raise
    except (TypeError, ValueError) as exc:
        raise ParamsError(f"{prefix.rstrip('.') or 'params'}: {exc}") from exc


def check_value(key: str, value: Any, meta: Any) -> None:
    """Apply a field's declared range / choices to `value`."""
    if value is None or not meta:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        near = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ParamsError(
            f"{key}: unknown value {value!r}{hint}; expected one of "
            + ", ".join(str(c) for c in choices)
        )
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise ParamsError(f"{key}: must be a finite number, got {v}")
        for op, bound, ok in (
            (">=", meta.get("ge"), lambda a, b: a >= b),
            (">", meta.get("gt"), lambda a, b: a > b),
            ("<=", meta.get("le"), lambda a, b: a <= b),
            ("<", meta.get("lt"), lambda a, b: a < b),
        ):
            if bound is not None and not ok(v, bound):
                raise ParamsError(f"{key}: must be {op} {bound}, got {v}")


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if is_dataclass(tp):
        return build(tp, value, f"{key}.")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        errors = []
        for arg in args:  # first alternative that accepts the value
            try:
                return _coerce(arg, value, key)
            except ParamsError as exc:
                errors.append(str(exc))
        raise ParamsError(errors[0] if len(errors) == 1 else f"{key}: unexpected value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        inner = typing.get_args(tp)[0]
        return tuple(_coerce(inner, v, key) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: expected a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise ParamsError(f"{key}: unsupported parameter type {tp!r}")


def to_dict(params: Any) -> dict[str, Any]:
    """Params as plain nested dicts and lists (YAML/JSON friendly)."""
    return _plain(asdict(params))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; an empty section stays as {"a": {}}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def set_dotted(tree: Any, key: str, value: Any) -> None:
    """tree["a"]["b"] = value for key "a.b", creating missing sections (any mapping type)."""
    *parents, leaf = key.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def get_dotted(tree: Any, key: str) -> Any:
    for part in key.split("."):
        tree = tree[part]
    return tree
