"""`noisyflow search` for real on tiny digits: a search end to end (Optuna storage, MLflow
parent and child runs, best params files), a search killed with SIGKILL and resumed (SQLite and
journal storage), and two parallel workers (a Prefect flow of two processes) on one SQLite
storage. Trials are tiny (300 training images, width 4, a few epochs)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO, subprocess_env, write_params

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

pytestmark = pytest.mark.integration

SPACE = {
    "fixed": {"data.val_size": 150},
    "search": {
        "method.loss": ["ce", "gce"],
        "method.selection": ["gmm", "coteaching", "none"],
        "method.ssl": ["mixmatch", "none"],
        "method.correction": ["none", "prototype_vote"],
        "train.lr": {"low": 0.01, "high": 0.1, "log": True},
        "losses.gce.q": {"low": 0.3, "high": 1.0, "when": {"method.loss": "gce"}},
    },
}


def _project(tmp_path: Path, **overrides: Any) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    write_params(
        project / "params.yaml",
        {"data.subset": 600, "data.test_size": 150, "train.epochs": 2, **overrides},
    )
    (project / "space.yaml").write_text(yaml.safe_dump(SPACE, sort_keys=False))
    return project


def _env(tmp_path: Path) -> dict[str, str]:
    return subprocess_env(
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
        PYTHONPATH=str(REPO),  # this checkout's code, whatever the venv's editable install is
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        NOISYFLOW_SEARCH_HEARTBEAT_S="2",
    )


def _cli(project: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "search", "--space", "space.yaml", *args]


def _study(storage: str, name: str | None = None) -> Any:
    from pipeline.search import open_storage

    st = open_storage(storage)
    if name is None:
        (summary,) = optuna.get_all_study_summaries(st, include_best_trial=False)
        name = summary.study_name
    return optuna.load_study(study_name=name, storage=st)


def _runs(tmp_path: Path) -> tuple[list[Any], list[Any]]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("noisyflow")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("noisyflow.kind") == "search"]
    children = [r for r in runs if r.data.tags.get("noisyflow.kind") == "search-trial"]
    return parents, children


def test_tiny_search_end_to_end(tmp_path, monkeypatch, capsys):
    """3 trials in this process: study, progress lines, MLflow runs, best params files; a rerun
    with the same target resumes the finished study without running anything."""
    from pipeline import search
    from pipeline.cli import main

    project = _project(tmp_path)
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    argv = ["search", "--trials", "3", "--space", "space.yaml", "--pruner", "none", "--seed", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("trial ")]
    assert len(lines) == 3 and all(
        "val_accuracy" in ln and "true_test_accuracy" in ln for ln in lines
    )
    assert "best: trial" in out and "rank correlation" in out
    assert "optuna-dashboard sqlite:///" in out and "noisyflow search --apply" in out

    storage = f"sqlite:///{project / '.noisyflow/search/search.db'}"
    study = _study(storage)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for t in trials:
        over = t.user_attrs[search.A_OVERRIDES]
        assert set(over) >= {"method.loss", "method.selection", "train.lr"}
        assert 0.0 <= t.value <= 1.0 and 0.0 <= t.user_attrs["true_test_accuracy"] <= 1.0
        folder = project / ".noisyflow/search" / study.study_name / "trials" / f"{t.number:04d}"
        assert (
            yaml.safe_load((folder / "params.yaml").read_text())["method"]["loss"]
            == over["method.loss"]
        )

    parents, children = _runs(tmp_path)
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["noisyflow.study"] == study.study_name
    assert parent.data.metrics["trials_complete"] == 3
    assert parent.data.tags["best.trial"] == str(study.best_trial.number)
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["noisyflow.trial_state"] == "complete"
        n = int(child.data.tags["optuna.trial_number"])
        assert child.data.metrics["objective"] == pytest.approx(study.trials[n].value)
        assert "true_test_accuracy" in child.data.metrics and "method.loss" in child.data.params

    best_dir = project / "outputs/search" / study.study_name
    best = yaml.safe_load((best_dir / "best_overrides.yaml").read_text())
    assert best == study.best_trial.user_attrs[search.A_OVERRIDES]
    full = yaml.safe_load((best_dir / "best_params.yaml").read_text())
    assert full["data"]["val_size"] == 150 and full["method"]["loss"] == best["method.loss"]

    assert main(argv) == 0  # resumed: the target is met, nothing runs
    out = capsys.readouterr().out
    assert "resumed: 3 trials done" in out and not any(
        ln.startswith("trial ") for ln in out.splitlines()
    )
    assert len(_study(storage).trials) == 3
    parents, _ = _runs(tmp_path)
    assert len(parents) == 1  # the same parent run, reopened


def _wait_mid_trial(storage: str, proc: subprocess.Popen, timeout: float = 300) -> int:
    """Wait until one trial has completed and another has reported an epoch; its number."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            trials = _study(storage).get_trials()
        except (ValueError, KeyError):  # the study does not exist yet
            time.sleep(0.3)
            continue
        done = [t for t in trials if t.state.name == "COMPLETE"]
        running = [t for t in trials if t.state.name == "RUNNING" and t.intermediate_values]
        if done and running:
            return running[0].number
        time.sleep(0.2)
    raise AssertionError("no trial started in time")


@pytest.mark.parametrize("storage_kind", ["sqlite", "journal"])
def test_killed_search_resumes_with_finished_trials_kept(tmp_path, storage_kind):
    """SIGKILL in the middle of a trial, then the same command again: the finished trials are
    kept untouched, the killed one is marked failed (killed) and retried with its parameters,
    and the study ends with exactly the target number of counted trials."""
    from pipeline import search

    project = _project(tmp_path, **{"train.epochs": 8})
    storage = (
        f"sqlite:///{project / '.noisyflow/search/search.db'}"
        if storage_kind == "sqlite"
        else str(project / "journal" / "search.log")
    )
    args = ["--trials", "3", "--pruner", "none"]
    if storage_kind == "journal":
        args += ["--storage", storage]
    env = _env(tmp_path)
    proc = subprocess.Popen(
        _cli(project, *args), cwd=project, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        killed = _wait_mid_trial(storage, proc)
        before = {
            t.number: t.value for t in _study(storage).get_trials() if t.state.name == "COMPLETE"
        }
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    again = subprocess.run(
        _cli(project, *args), cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resumed: {len(before)} trials done" in again.stdout

    trials = _study(storage).get_trials()
    counts = search.count_kinds(trials)
    assert counts["complete"] + counts["pruned"] + counts["failed"] == 3
    assert counts["killed"] == 1 and counts["running"] == counts["waiting"] == 0
    by_number = {t.number: t for t in trials}
    for number, value in before.items():  # kept as they were
        assert by_number[number].state.name == "COMPLETE" and by_number[number].value == value
    dead = by_number[killed]
    assert dead.state.name == "FAIL" and search.A_KILLED in dead.user_attrs
    (retry,) = [t for t in trials if t.user_attrs.get(search.A_RETRY_OF) == killed]
    assert retry.state.name == "COMPLETE" and retry.params == dead.params

    parents, children = _runs(tmp_path)
    assert len(parents) == 1
    states = {int(c.data.tags["optuna.trial_number"]): c for c in children}
    assert states[killed].info.status == "KILLED"
    assert states[killed].data.tags["noisyflow.trial_state"] == "killed"
    assert states[retry.number].data.tags["noisyflow.trial_state"] == "complete"


def test_two_workers_share_one_sqlite_storage(tmp_path):
    """--workers 2 (a Prefect flow of two worker processes): every trial recorded once, the
    target met exactly, both workers took trials, the database intact."""
    from pipeline import search

    project = _project(tmp_path, **{"train.epochs": 3})
    proc = subprocess.run(
        _cli(project, "--trials", "6", "--workers", "2", "--pruner", "none"),
        cwd=project,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    progress = [ln for ln in proc.stdout.splitlines() if ln.startswith("trial ")]
    assert len(progress) == 6

    db = project / ".noisyflow/search/search.db"
    trials = _study(f"sqlite:///{db}").get_trials()
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs[search.A_WORKER] for t in trials}) == 2
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (n_trials,) = con.execute("SELECT COUNT(*) FROM trials").fetchone()
        assert n_trials == 6

    parents, children = _runs(tmp_path)
    assert len(parents) == 1
    numbers = sorted(int(c.data.tags["optuna.trial_number"]) for c in children)
    assert numbers == list(range(6))
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
