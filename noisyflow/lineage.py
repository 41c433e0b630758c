"""Where a run comes from: DVC-style content hashes, git state, the params hash, and the key
that groups the stage processes of one pipeline run. No MLflow here (see tracking.py)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import uuid
from pathlib import Path

GROUP_ENV = "NOISYFLOW_RUN_GROUP"


def group_key() -> str:
    """The key shared by all stage processes of one pipeline run (see module docstring)."""
    if os.environ.get(GROUP_ENV):
        return os.environ[GROUP_ENV]
    try:
        import psutil

        for proc in psutil.Process().parents():
            cmd = proc.cmdline()
            if any(Path(part).name == "dvc" for part in cmd[:2]) or (
                len(cmd) > 2 and cmd[1:3] == ["-m", "dvc"]
            ):
                started = int(proc.create_time() * 1000)
                exp = os.environ.get("DVC_EXP_NAME", "")  # one queue worker runs several
                return f"dvc-{socket.gethostname()}-{proc.pid}-{started}{exp}"
    except Exception:  # psutil missing or a process vanished: fall through to a fresh key
        pass
    return f"solo-{uuid.uuid4().hex[:12]}"


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dvc_hash(path: str | Path) -> str:
    """md5 as DVC 3 records it in dvc.lock: plain md5 for files, '<md5>.dir' for directories."""
    path = Path(path)
    if path.is_file():
        return file_md5(path)
    entries = sorted(
        (
            {"md5": file_md5(p), "relpath": p.relative_to(path).as_posix()}
            for p in path.rglob("*")
            if p.is_file()
        ),
        key=lambda e: e["relpath"],
    )
    listing = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(listing).hexdigest() + ".dir"


def git_info(root: Path) -> dict[str, str]:
    """Commit and dirty flag of the work tree (empty when not a git checkout)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (subprocess.SubprocessError, OSError):
        return {}
    return {"git_commit": commit, "git_dirty": str(dirty).lower()}


def params_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else ""
