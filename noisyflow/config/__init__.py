"""Typed view of params.yaml: `load_params` is the only code that reads it.

Unknown keys, wrong types, values out of range, unknown method names and combinations that
cannot run raise `ParamsError` naming the file and the dotted key, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from noisyflow.config.parse import build, flatten, get_dotted, set_dotted, to_dict
from noisyflow.errors import ParamsError

_SCHEMA = (
    "AugmentParams",
    "CorrectParams",
    "CsvParams",
    "DataParams",
    "MethodParams",
    "ModelParams",
    "NoiseParams",
    "OptimParams",
    "Params",
    "RuntimeParams",
    "TrackingParams",
    "TrainParams",
    "WarmupParams",
)


def __getattr__(name: str) -> Any:
    # The schema imports the method registries, whose entries declare their params with
    # noisyflow.config.parse: loading it lazily keeps `import noisyflow.methods` cycle-free.
    if name in _SCHEMA:
        from noisyflow.config import schema

        return getattr(schema, name)
    raise AttributeError(f"module 'noisyflow.config' has no attribute {name!r}")


__all__ = [
    *_SCHEMA,
    "flatten",
    "get_dotted",
    "load_params",
    "parse_assignments",
    "parse_params",
    "read_yaml",
    "set_dotted",
    "to_dict",
    "with_overrides",
]


def read_yaml(path: str | Path) -> Any:
    """safe_load a YAML file; ParamsError naming the file when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParamsError(f"{path}: not valid YAML ({first})") from None


def load_params(path: str | Path = "params.yaml") -> Any:
    """Read and validate params.yaml. Raises ParamsError naming the file and key."""
    raw = read_yaml(path) or {}
    try:
        return parse_params(raw)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None


def parse_params(raw: dict[str, Any]) -> Any:
    """Build Params from a plain nested dict (as read from YAML)."""
    from noisyflow.config.schema import Params

    return build(Params, raw)


def with_overrides(params: Any, overrides: dict[str, Any]) -> Any:
    """Return params with dotted-key overrides applied, e.g. {"train.epochs": 3}."""
    tree = to_dict(params)
    for key, value in overrides.items():
        set_dotted(tree, key, value)
    return parse_params(tree)


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """['a.b=0.2', 'c=none'] -> {'a.b': 0.2, 'c': 'none'}; values are read as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ParamsError(f"expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise ParamsError(
                f"{key.strip()}: cannot read value {text!r} (quote it if it is text)"
            ) from None
    return out
