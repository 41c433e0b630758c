"""The workspace lock a Prefect flow holds for its whole run, and the check every stage makes.

A flow (`noisyflow run`, `sweep`, `serve`) takes an exclusive `flock` on
`.dvc/tmp/noisyflow.lock` and writes its pid and run group into it; the kernel drops the lock
when the holder dies, so it never goes stale. The flow runs one `dvc repro --single-item` per
stage, and between two of them DVC's own repository lock is free; so each stage process checks
the flow lock: inside the flow's run group it proceeds, otherwise (a plain `dvc repro` or a
second flow started meanwhile) it stops before writing anything, naming the holder.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from noisyflow.errors import WorkspaceBusyError

LOCK_PATH = ".dvc/tmp/noisyflow.lock"
GROUP_ENV = "NOISYFLOW_RUN_GROUP"


def holder(root: Path) -> tuple[int, str] | None:
    """(pid, run group) of the flow holding the workspace lock, or None when it is free."""
    path = Path(root) / LOCK_PATH
    if not path.is_file():
        return None
    with open(path) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            lines = fh.read().splitlines()
            pid = int(lines[0]) if lines and lines[0].isdigit() else -1
            return pid, (lines[1] if len(lines) > 1 else "")
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def check_stage_may_run(root: Path, stage: str) -> None:
    """WorkspaceBusyError unless the workspace is free or held by this process's own flow."""
    held = holder(root)
    if held is None:
        return
    pid, group = held
    mine = os.environ.get(GROUP_ENV, "")
    if group and (mine == group or mine.startswith(f"{group}/")):
        return
    raise WorkspaceBusyError(
        f"stage {stage!r}: a noisyflow flow (pid {pid}, run {group or '?'}) is running in "
        f"{root}; wait for it to finish (or stop it) instead of running DVC beside it"
    )
