"""The DVC workspace a flow works in: an exclusive lock, and params overrides.

Only one flow run may touch a workspace at a time (two `dvc repro`s on the same outputs fail
or, worse, interleave their writes to dvc.lock). The lock is `fcntl.flock` on
`.dvc/tmp/noisyflow.lock`: the kernel drops it when the holder dies, so it never goes stale.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from noisyflow.config import (  # parse_assignments re-exported for the CLI
    load_params,
    set_dotted,
    with_overrides,
)
from noisyflow.config import (
    parse_assignments as parse_assignments,
)
from noisyflow.errors import ParamsError
from noisyflow.locking import LOCK_PATH as LOCK_PATH

POLL_S = 0.5


@contextmanager
def workspace_lock(root: Path, wait_s: float, group: str = "") -> Iterator[bool]:
    """Hold the workspace lock for run `group` (the stages of that run may proceed, any other
    DVC run is refused: see noisyflow.locking); yields False if not acquired within wait_s."""
    path = Path(root) / LOCK_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        deadline = time.monotonic() + max(wait_s, 0.0)
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(POLL_S)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n{group}\n")
            fh.flush()
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def validate_overrides(root: Path, *override_sets: dict[str, Any]) -> None:
    """Raise ParamsError (naming the key) unless params.yaml with each of `override_sets` is
    valid; params.yaml is read once for all of them."""
    params = load_params(Path(root) / "params.yaml")
    for overrides in override_sets:
        with_overrides(params, overrides)


def apply_overrides(root: Path, overrides: dict[str, Any]) -> None:
    """Write dotted-key overrides into params.yaml, keeping its comments (like `dvc exp run -S`).

    Validate first with validate_overrides: this writes whatever it is given.
    """
    if not overrides:
        return
    from dvc.utils.serialize import modify_yaml  # ruamel round-trip: comments survive

    with modify_yaml(Path(root) / "params.yaml") as tree:
        for key, value in overrides.items():
            set_dotted(tree, key, value)


def parse_sweep(items: list[str]) -> list[dict[str, Any]]:
    """['a=1,2', 'b=x,y'] -> the cartesian product [{'a': 1, 'b': 'x'}, {'a': 1, 'b': 'y'}, ...]."""
    import itertools

    axes: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ParamsError(f"expected KEY=V1,V2,..., got {item!r}")
        axes[key.strip()] = [yaml.safe_load(v) for v in text.split(",")]
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]
