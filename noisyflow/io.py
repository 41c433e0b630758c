"""File I/O at the edges: atomic outputs and safe loads (no pickle anywhere)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from noisyflow.errors import InputDataError


@contextmanager
def atomic_outputs(*targets: str | Path) -> Iterator[list[Path]]:
    """Yield temporary paths for `targets`; move them into place only if the block succeeds.

    Each target (file or directory) is written under a temporary sibling. On success every
    temporary path replaces its target; on any exception all of them are removed, so a failed
    stage leaves no partial output (and a previous output stays untouched until success).
    """
    final = [Path(t) for t in targets]
    temps = []
    for path in final:
        path.parent.mkdir(parents=True, exist_ok=True)
        temps.append(Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name)
    try:
        yield temps
        for tmp, path in zip(temps, final, strict=True):
            if not tmp.exists():
                raise RuntimeError(f"stage did not write its declared output {path}")
        for tmp, path in zip(temps, final, strict=True):
            _remove(path)
            os.replace(tmp, path)
    finally:
        for tmp in temps:
            shutil.rmtree(tmp.parent, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_json(path: str | Path, obj: Any) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputDataError(f"{path}: not valid JSON ({exc})") from exc


def load_npz(path: str | Path, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load an .npz without pickle; raise InputDataError naming missing arrays."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError) as exc:
        raise InputDataError(f"{path}: not a readable .npz without pickle ({exc})") from exc
    missing = [k for k in required if k not in arrays]
    if missing:
        raise InputDataError(
            f"{path}: missing array(s) {', '.join(missing)}; found {', '.join(arrays) or 'none'}"
        )
    return arrays


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    torch.save(payload, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with weights_only=True (tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt/untrusted files
        raise InputDataError(f"{path}: not a valid noisyflow checkpoint ({exc})") from exc
