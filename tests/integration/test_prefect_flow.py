"""The Prefect flows for real: a temporary test server (prefect_test_harness), real `dvc`, real
stage processes logging to a temporary MLflow sqlite store, and one real `prefect server start`
serving the deployment. One tiny workspace is shared across the module (a full tiny pipeline
costs ~1 min); later tests change only late-stage params so DVC reruns just those stages.
"""

from __future__ import annotations

import contextvars
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_RESULTS_LOCAL_STORAGE_PATH,
    temporary_settings,
)
from prefect.testing.utilities import prefect_test_harness

from pipeline.flows import REPORT_KEY, STAGES, SWEEP_KEY, pipeline, sweep
from pipeline.workspace import LOCK_PATH
from tests.helpers import REPO, dvc, make_dvc_project, subprocess_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A Prefect test server, isolated result storage and MLflow store, for the module."""
    tmp = tmp_path_factory.mktemp("prefect")
    env = {k: v for k, v in subprocess_env().items() if k.startswith("GIT_")}
    env.update(
        PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(tmp / "storage"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}",
        NOISYFLOW_RETRY_DELAY_S="0",
        NOISYFLOW_THREADS="1",
    )
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("NOISYFLOW_RUN_GROUP", raising=False)
        mp.delenv("PREFECT_API_URL", raising=False)
        storage = {PREFECT_RESULTS_LOCAL_STORAGE_PATH: tmp / "storage"}
        with temporary_settings(storage), prefect_test_harness(server_startup_timeout=90):
            yield env


@pytest.fixture(scope="module")
def workspace(prefect_env: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Flow run A (a real tiny pipeline, saved as experiment nightly-1) and, while A holds the
    workspace, flow run B on the same workspace with a 1 s lock wait."""
    project = make_dvc_project(tmp_path_factory.mktemp("ws") / "proj")
    states: dict[str, Any] = {}

    def run_a() -> None:
        states["a"] = pipeline(project_dir=str(project), experiment="nightly-1", return_state=True)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run_a,))
    thread.start()
    lock = project / LOCK_PATH
    deadline = time.monotonic() + 120
    while not (lock.is_file() and lock.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    states["b"] = pipeline(project_dir=str(project), lock_wait_s=1, return_state=True)
    thread.join(900)
    return {"project": project, **states}


def flow_run_id(state: Any) -> str:
    return str(state.state_details.flow_run_id)


def task_runs(run_id: str) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    return {run.name: run for run in runs}


def artifact(run_id: str, key: str) -> Any:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
            )
        )
    assert len(found) == 1, found
    return found[0]


def mlflow_group(group: str) -> tuple[Any, list[Any]]:
    """(parent run, child runs) that the stages logged for one group key."""
    import mlflow

    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("noisyflow")
    runs = client.search_runs([exp.experiment_id], f"tags.`noisyflow.group` = '{group}'")
    parents = [r for r in runs if r.data.tags.get("noisyflow.kind") == "pipeline"]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    children = [r for r in runs if r is not parents[0]]
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children)
    return parents[0], children


def test_flow_runs_each_stage_as_a_task_in_dvc_order(workspace: dict) -> None:
    state = workspace["a"]
    assert state.is_completed(), state.message
    runs = task_runs(flow_run_id(state))
    assert set(STAGES) | {"save-nightly-1"} <= set(runs)
    assert all(run.state.is_completed() for run in runs.values())
    starts = [runs[s].start_time for s in STAGES]
    assert starts == sorted(starts)
    assert "nightly-1" in dvc(workspace["project"], "exp", "list", "--name-only").stdout
    status = dvc(workspace["project"], "status").stdout  # dvc.lock is whole: only the
    assert status.split() == ["sources:", "always", "changed"]  # fingerprint stage is "changed"


def test_second_run_on_a_busy_workspace_ends_busy_not_completed(workspace: dict) -> None:
    from pipeline.flows import BUSY, EXIT_BUSY, exit_code

    state = workspace["b"]
    assert not state.is_completed() and state.is_cancelled() and state.name == BUSY
    assert "another run holds the workspace lock" in state.message
    assert task_runs(flow_run_id(state)) == {}
    assert exit_code(state) == EXIT_BUSY == 3


def test_report_artifact_has_metrics_issues_and_mlflow_parent(workspace: dict) -> None:
    project, run_id = workspace["project"], flow_run_id(workspace["a"])
    text = artifact(run_id, REPORT_KEY).data
    metrics = json.loads((project / "metrics.json").read_text())
    for key in ("test_accuracy", "detection_f1", "detection_auroc", "correction_accuracy"):
        assert f"| {key} | {metrics[key]:.4f} |" in text
    with open(project / "outputs/label_issues.csv", newline="") as fh:
        issues = sum(row["is_label_issue"] == "True" for row in csv.DictReader(fh))
    assert f"label issues found: **{issues}**" in text
    parent, _ = mlflow_group(run_id)
    assert f"`{parent.info.run_id}`" in text and f"runs:/{parent.info.run_id}" in text
    assert workspace["a"].result()["mlflow_parent_run_id"] == parent.info.run_id


def test_stages_log_under_one_mlflow_parent_tagged_with_the_flow_run(workspace: dict) -> None:
    run_id = flow_run_id(workspace["a"])
    parent, children = mlflow_group(run_id)
    logged = [s for s in STAGES if s != "sources"]  # the fingerprint stage logs nothing
    assert sorted(c.data.tags["stage"] for c in children) == sorted(logged)
    assert {c.data.tags["prefect.flow_run_id"] for c in children} == {run_id}
    assert parent.data.tags["prefect.flow_run_id"] == run_id
    assert parent.info.status == "FINISHED"


def test_unknown_key_fails_before_anything_runs(workspace: dict) -> None:
    project = workspace["project"]
    before = (project / "params.yaml").read_text()
    state = pipeline(project_dir=str(project), overrides={"train.epochz": 1}, return_state=True)
    assert state.is_failed() and "did you mean 'train.epochs'" in state.message
    assert task_runs(flow_run_id(state)) == {}
    assert (project / "params.yaml").read_text() == before


def test_bad_value_fails_its_stage_with_the_message_and_no_retry(
    prefect_env: dict, tmp_path: Path
) -> None:
    project = make_dvc_project(tmp_path / "proj")
    state = pipeline(
        project_dir=str(project), overrides={"data.test_size": 100000}, retries=2, return_state=True
    )
    assert state.is_failed()
    runs = task_runs(flow_run_id(state))
    assert sorted(runs) == ["prepare", "sources"]  # later stages never started
    assert runs["prepare"].state.is_failed() and runs["prepare"].run_count == 1
    assert "error: data.test_size: 100000 must be between 1 and" in runs["prepare"].state.message


def test_unreachable_mlflow_server_is_retried(
    prefect_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    project = make_dvc_project(tmp_path / "proj")
    state = pipeline(project_dir=str(project), retries=1, return_state=True)
    runs = task_runs(flow_run_id(state))
    assert state.is_failed() and sorted(runs) == ["prepare", "sources"]
    assert runs["prepare"].run_count == 2  # one retry, then the final failure
    assert "is not reachable" in runs["prepare"].state.message
    assert "is not reachable" in runs["prepare"].state.message


def test_sweep_runs_one_experiment_per_set_and_publishes_the_table(workspace: dict) -> None:
    project = workspace["project"]
    sets = [{}, {"correction.prototype.prototype_weight": 0.3}]
    state = sweep(
        param_sets=sets, project_dir=str(project), names=["base", "pw03"], return_state=True
    )
    assert state.is_completed(), state.message
    results = state.result()
    assert [r["name"] for r in results] == ["base", "pw03"]
    # only correct + evaluate depend on the changed key: train (and its accuracy) stayed put
    assert results[0]["metrics"]["test_accuracy"] == results[1]["metrics"]["test_accuracy"]
    _, children = mlflow_group(f"{flow_run_id(state)}/pw03")
    assert sorted(c.data.tags["stage"] for c in children) == ["correct", "evaluate"]
    listed = dvc(project, "exp", "list", "--name-only").stdout.split()
    assert {"base", "pw03", "nightly-1"} <= set(listed)
    table = json.loads(artifact(flow_run_id(state), f"{SWEEP_KEY}-table").data)
    assert [row["name"] for row in table] == ["base", "pw03"]
    assert table[1]["overrides"] == "correction.prototype.prototype_weight=0.3"
    assert (
        "| pw03 | correction.prototype.prototype_weight=0.3 |"
        in artifact(flow_run_id(state), SWEEP_KEY).data
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(cmd: list[str], log: Path, **kwargs: Any) -> subprocess.Popen:
    """A process in its own session (so the whole group can be stopped), output to `log`."""
    with open(log, "w") as fh:
        return subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
        )


def stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def wait_until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except Exception:
            pass
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_served_deployment_runs_on_a_real_prefect_server(workspace: dict, tmp_path: Path) -> None:
    project, port = workspace["project"], free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "home"), PREFECT_API_URL=url)
    prefect = str(Path(sys.executable).parent / "prefect")
    server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    server_cmd = [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    server = start(server_cmd, tmp_path / "server.log", env=server_env)
    procs = [server]
    try:
        health = f"{url}/health"
        wait_until(lambda: urllib.request.urlopen(health, timeout=2).status == 200, 120, "server")
        serve_cmd = [
            sys.executable,
            "-m",
            "pipeline.cli",
            "serve",
            "--cron",
            "0 2 * * *",
            "--name",
            "itest",
            "--project-dir",
            str(project),
            "-S",
            "correction.prototype.prototype_weight=0.7",
        ]
        procs.append(start(serve_cmd, tmp_path / "serve.log", env=env, cwd=REPO))
        with temporary_settings({PREFECT_API_URL: url}):
            flow_run = run_served(url)
            runs = task_runs(str(flow_run.id))
            report = artifact(str(flow_run.id), REPORT_KEY).data
        assert flow_run.state.is_completed(), (tmp_path / "serve.log").read_text()[-3000:]
        assert set(STAGES) <= set(runs) and all(r.state.is_completed() for r in runs.values())
        parent, children = mlflow_group(str(flow_run.id))
        assert sorted(c.data.tags["stage"] for c in children) == ["correct", "evaluate"]
        assert parent.data.tags["prefect.flow_run_id"] == str(flow_run.id)
        assert f"`{parent.info.run_id}`" in report
    finally:
        for proc in reversed(procs):
            stop(proc)


def run_served(url: str) -> Any:
    """Wait for the served deployment (cron schedule), trigger a run and wait for its end."""
    from prefect.deployments import run_deployment

    def deployment() -> Any:
        with get_client(sync_client=True) as client:
            return client.read_deployment_by_name("noisyflow-pipeline/itest")

    dep = wait_until(deployment, 120, f"the served deployment on {url}")
    assert [s.schedule.cron for s in dep.schedules] == ["0 2 * * *"]
    return run_deployment("noisyflow-pipeline/itest", timeout=480, poll_interval=2)


def test_cli_run_on_an_up_to_date_workspace_runs_nothing(
    workspace: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from prefect.client.schemas.sorting import ArtifactSort

    from pipeline.cli import main

    monkeypatch.chdir(workspace["project"])
    lock_before = (workspace["project"] / "dvc.lock").read_text()
    assert main(["run"]) == 0
    assert "flow run Completed" in capsys.readouterr().out
    with get_client(sync_client=True) as client:
        latest = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[REPORT_KEY])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )[0]
    assert "MLflow parent run: none" in latest.data  # DVC skipped every stage
    assert (workspace["project"] / "dvc.lock").read_text() == lock_before
