"""Run `dvc` as a subprocess, stream its output line by line, and classify its failures.

A failure is *transient* (worth a retry) when it can pass by itself: DVC's repository or
stage lock was busy, the MLflow server was unreachable, or the process died from a signal.
Anything else (a stage's `error: ...` about bad input, exit code 2) is permanent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Failures that can pass by themselves. A store that *refused* a request (bad URI, no
# permission, unknown experiment) is permanent and never retried.
TRANSIENT_PATTERNS = (
    "Unable to acquire lock",
    "is busy",
    "is not reachable",
    "is temporarily unavailable",
    "database is locked",
    "Connection refused",
)
_SIGNAL_EXIT = re.compile(r"exited with -\d+")
TAIL_LINES = 40


class StageError(RuntimeError):
    """A dvc command failed; the message holds the stage's `error:` lines and DVC's ERROR line."""


class TransientStageError(StageError):
    """A dvc command failed for a reason that may pass (lock, unreachable server, signal)."""


def stream(
    cmd: Sequence[str], *, cwd: Path, env: dict[str, str], on_line: Callable[[str], None]
) -> tuple[int, list[str]]:
    """Run `cmd` with stdout+stderr merged, calling `on_line` per line as it arrives.

    Returns:
        (exit code, the last TAIL_LINES lines). A negative exit code means a signal.
    """
    tail: list[str] = []
    with subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if line:
                on_line(line)
                tail = [*tail[-(TAIL_LINES - 1) :], line]
    return proc.returncode, tail


def run_dvc(
    args: Sequence[str], *, cwd: Path, env: dict[str, str], on_line: Callable[[str], None]
) -> list[str]:
    """Run `python -m dvc ARGS` in `cwd`; raise StageError / TransientStageError on failure."""
    rc, tail = stream([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, on_line=on_line)
    if rc != 0:
        raise classify(rc, tail, f"dvc {' '.join(args)}")
    return tail


def classify(rc: int, tail: list[str], what: str) -> StageError:
    """The exception for a failed command: its `error:`/`ERROR:` lines, transient or not."""
    errors = [ln for ln in tail if ln.lower().startswith("error")] or tail[-5:]
    message = f"{what} failed (exit {rc}): " + " | ".join(errors)
    text = "\n".join(tail)
    transient = rc < 0 or _SIGNAL_EXIT.search(text) or any(p in text for p in TRANSIENT_PATTERNS)
    return (TransientStageError if transient else StageError)(message)


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only TransientStageError failures."""
    if not state.is_failed():
        return False
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # result not retrievable: do not guess, do not retry
        return False
    return isinstance(exc, TransientStageError)


def child_env(**extra: str) -> dict[str, str]:
    """os.environ plus `extra`, with this interpreter's directory first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.update(extra)
    return env
