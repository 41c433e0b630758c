"""What `prepare` reads from the user's disk, as (path, size, mtime_ns) records.

A tiny always-run DVC stage writes `fingerprint(params.data, project)` to a small JSON file that
`prepare` depends on: editing, adding, removing or renaming any input (the npz, the pack, the
CSV, any image it or the folder lists, the test set, the label file) changes the JSON and makes
`dvc repro` rerun `prepare`; an untouched data set leaves the JSON, and so the pipeline, as is.
The records are in source order and the result is plain JSON (deterministic for unchanged files).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noisyflow.data.sources import load_source
from noisyflow.data.sources.base import display, require_file, resolve

if TYPE_CHECKING:
    from noisyflow.config import DataParams


def fingerprint(data: DataParams, base: str | Path = ".") -> dict[str, Any]:
    """{"source", "files": [[path, size, mtime_ns], ...]} (+ "sklearn" for digits).

    Paths are as params.yaml writes them (joined with what the folder or CSV lists), so the
    record does not change when the project folder moves. Raises InputDataError like prepare
    for missing files, unreadable CSVs or paths escaping the data root.
    """
    base = Path(base)
    out: dict[str, Any] = {"source": data.source, "files": []}
    files: list[list[Any]] = out["files"]
    if data.source == "digits":
        import sklearn

        out["sklearn"] = sklearn.__version__
    splits = [("train", data.path, "data.path")]
    if data.test_path:
        splits.append(("test", data.test_path, "data.test_path"))
    for split, written, key in splits:
        if written is None:
            continue
        if data.source in ("csv", "npz", "cifar10"):
            path, shown = resolve(written, base), display(written, base)
            require_file(path, key=key, shown=shown)
            files.append(_record(path, written))
        if data.source in ("csv", "imagefolder"):
            src = load_source(data, split=split, base=base)
            if data.source == "imagefolder":
                root = written
            else:
                root = data.root or os.path.dirname(written) or "."
            for real, rel in zip(src.encoded.files, src.paths, strict=True):
                files.append(_record(Path(real), os.path.normpath(os.path.join(root, rel))))
    if data.labels_path:
        path, shown = resolve(data.labels_path, base), display(data.labels_path, base)
        require_file(path, key="data.labels_path", shown=shown)
        files.append(_record(path, data.labels_path))
    return out


def _record(path: Path, name: str) -> list[Any]:
    st = os.stat(path)
    return [str(name), int(st.st_size), int(st.st_mtime_ns)]
