"""File I/O at the edges: atomic outputs and safe loads (no pickle anywhere)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from noisyflow.errors import InputDataError, OutputError

JOURNAL_DIR = ".noisyflow/txn"


@contextmanager
def atomic_outputs(*targets: str | Path) -> Iterator[list[Path]]:
    """Yield temporary paths for `targets`; move them into place together, only on success.

    Each target (file or directory) is written under a temporary sibling. On success a journal
    listing the moves is written first, then every temporary path replaces its target, then the
    journal goes; a process killed between two moves is completed by `recover_outputs` at the
    next stage start, so a stage's outputs appear together or not at all. On an exception all
    temporaries are removed and the previous outputs stay untouched. Write failures (disk full,
    read-only directory) raise OutputError naming the path.
    """
    recover_outputs()
    final = [Path(t) for t in targets]
    temps: list[Path] = []
    try:
        for path in final:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmpdir = tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)
            temps.append(Path(tmpdir) / path.name)
        yield temps
        for tmp, path in zip(temps, final, strict=True):
            if not tmp.exists():
                raise RuntimeError(f"stage did not write its declared output {path}")
        _commit(list(zip(temps, final, strict=True)))
    except OSError as exc:
        where = exc.filename or (final[0] if final else "")
        raise OutputError(
            f"{where}: cannot write the stage's outputs ({exc.strerror or exc}); "
            "the previous outputs are untouched"
        ) from None
    finally:
        for tmp in temps:
            shutil.rmtree(tmp.parent, ignore_errors=True)


def _commit(moves: list[tuple[Path, Path]]) -> None:
    journal_dir = Path(JOURNAL_DIR)
    journal_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(suffix=".json", dir=journal_dir)
    with os.fdopen(fd, "w") as fh:
        json.dump([[str(a.resolve()), str(b.resolve())] for a, b in moves], fh)
        fh.flush()
        os.fsync(fh.fileno())
    _apply(moves)
    os.unlink(name)


def _apply(moves: list[tuple[Path, Path]]) -> None:
    for tmp, path in moves:
        if tmp.exists() or tmp.is_symlink():
            _remove(path)
            os.replace(tmp, path)
            shutil.rmtree(tmp.parent, ignore_errors=True)


def recover_outputs(journal_dir: str | Path = JOURNAL_DIR) -> int:
    """Finish the output moves of stages killed mid-commit; returns how many were finished."""
    journal_dir = Path(journal_dir)
    if not journal_dir.is_dir():
        return 0
    done = 0
    for journal in sorted(journal_dir.glob("*.json")):
        try:
            moves = [(Path(a), Path(b)) for a, b in json.loads(journal.read_text())]
        except (OSError, ValueError):
            journal.unlink(missing_ok=True)
            continue
        _apply(moves)
        journal.unlink(missing_ok=True)
        done += 1
    return done


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
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputDataError(f"{path}: not a readable .npz without pickle ({exc})") from None
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
