"""Shared test helpers: tiny params and a throw-away DVC project (git repo) built from this one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

from noisyflow.config import set_dotted

REPO = Path(__file__).resolve().parents[1]
# the shared CIFAR-10 pack beside the checkout (as in CI); tests that need it skip without it
CIFAR_PACK = REPO.parent / "shared" / "data" / "cifar10-jpeg.npz"

# Small enough that a whole `dvc repro` takes well under a minute on 2 cores.
TINY: dict[str, Any] = {
    "data.test_size": 200,
    "model.width": 4,
    "warmup.epochs": 1,
    "train.epochs": 2,
    "ssl.mixmatch.rampup_epochs": 1,
    "method.correction": "prototype",  # the longest chain: self-learning trains in `correct`
    "correction.prototype.rounds": 1,
    "correction.prototype.epochs": 1,
    "correction.prototype.samples_per_class": 40,
    "correction.prototype.prototypes": 2,
    "runtime.threads": 1,
    "runtime.device": "cpu",
}


def write_params(path: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Copy the repo's params.yaml to `path` with dotted-key overrides applied."""
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in {**TINY, **(overrides or {})}.items():
        set_dotted(tree, key, value)
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: this venv first on PATH, quiet analytics."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        DVC_NO_ANALYTICS="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        GIT_AUTHOR_NAME="noisyflow-tests",
        GIT_AUTHOR_EMAIL="tests@noisyflow.invalid",
        GIT_COMMITTER_NAME="noisyflow-tests",
        GIT_COMMITTER_EMAIL="tests@noisyflow.invalid",
        NOISYFLOW_THREADS="1",
    )
    env.update(extra)
    return env


def make_dvc_project(dest: Path, overrides: dict[str, Any] | None = None) -> Path:
    """A git + DVC repo holding this project's pipeline with tiny params; returns its path."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("noisyflow", "stages", "pipeline"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy2(REPO / name, dest / name)
    write_params(dest / "params.yaml", overrides)
    env = subprocess_env()
    for cmd in (
        ["git", "init", "-q"],
        [sys.executable, "-m", "dvc", "init", "-q"],
        [sys.executable, "-m", "dvc", "config", "core.analytics", "false"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "tiny noisyflow project"],
    ):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    return dest


def dvc(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `dvc ARGS` in the project; raise with its output on failure."""
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=project,
        env=env or subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"dvc {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


class Page(HTMLParser):
    """Collects what the tests look at: ids, tags, <img> sources, links, table cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.tags: list[str] = []
        self.imgs: list[str] = []
        self.hrefs: list[str] = []
        self.meta: dict[str, str] = {}
        self.cells: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag == "a":
            self.hrefs.append(a.get("href") or "")
        if tag == "meta" and a.get("name"):
            self.meta[a["name"]] = a.get("content") or ""
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page
