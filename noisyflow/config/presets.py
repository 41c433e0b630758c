"""Presets: partial params trees in `params/<name>.yaml` (`fast`, `reference`) that overlay
params.yaml. Applied by `noisyflow preset NAME --apply` (the values land in params.yaml, where
DVC tracks them) or in code with `with_preset` (benchmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noisyflow.config import flatten, read_yaml, with_overrides
from noisyflow.errors import ParamsError

PRESETS_DIR = Path(__file__).resolve().parents[2] / "params"


def preset_path(name: str) -> Path:
    """params/<name>.yaml of this project, or a path to a preset file of your own."""
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return Path(name)
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file() or name == "search_space":
        known = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml") if p.stem != "search_space")
        raise ParamsError(f"preset {name!r} not found; known: {', '.join(known)}")
    return path


def preset_overrides(name: str) -> dict[str, Any]:
    """The preset as dotted-key overrides, e.g. {"model.arch": "fastnet", ...}."""
    tree = read_yaml(preset_path(name)) or {}
    if not isinstance(tree, dict):
        raise ParamsError(f"{preset_path(name)}: expected a mapping of params sections")
    return flatten(tree)


def with_preset(params: Any, name: str) -> Any:
    """params with the preset applied (validated like any params)."""
    try:
        return with_overrides(params, preset_overrides(name))
    except ParamsError as exc:
        raise ParamsError(f"{preset_path(name)}: {exc}") from None
