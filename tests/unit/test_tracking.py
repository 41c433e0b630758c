"""The MLflow adapter against a real local sqlite store (no mocks): grouping, datasets, the model
registry rule, parent summaries, `noisyflow compare`, and failing fast on a dead server."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import mlflow
import numpy as np
import psutil
import pytest
import torch

from noisyflow import tracking
from noisyflow.config import flatten, parse_params, to_dict, with_overrides
from noisyflow.errors import TrackingError
from noisyflow.models import Ensemble, ModelConfig, create_model
from pipeline import cli
from pipeline.compare import format_table, row
from tests.helpers import REPO, subprocess_env, write_params

EXPERIMENT = "unit-tracking"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """The project root is the cwd: keep mlruns/ and friends out of the checkout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)


def open_stage(name: str, tmp_path: Path, **overrides: object):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("seed: 0\n")
    params = with_overrides(parse_params({}), {"tracking.experiment": EXPERIMENT, **overrides})
    return tracking.stage_run(
        name, params=params, params_file=params_file, every=flatten(to_dict(params))
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stages_of_one_group_share_one_parent(tracking_env, tmp_path, monkeypatch):
    monkeypatch.setenv(tracking.GROUP_ENV, "group-shared")
    ids = []
    for stage in ("prepare", "warmup"):
        with open_stage(stage, tmp_path, **{"data.noise.rate": 0.4}) as run:
            ids.append((run.run_id, run.parent_id))
    (child1, parent1), (child2, parent2) = ids
    assert parent1 == parent2 and child1 != child2
    client = mlflow.MlflowClient(tracking_env)
    parent = client.get_run(parent1)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[tracking.KIND_TAG] == "pipeline"
    assert parent.data.params["data.noise.rate"] == "0.4"
    for child_id, stage in ((child1, "prepare"), (child2, "warmup")):
        tags = client.get_run(child_id).data.tags
        assert tags["mlflow.parentRunId"] == parent1
        assert tags["stage"] == tags["dvc.stage"] == stage
        assert len(tags["params_hash"]) == 16


def test_a_failing_stage_marks_child_and_parent_failed(tracking_env, tmp_path, monkeypatch):
    monkeypatch.setenv(tracking.GROUP_ENV, "group-failing")
    with pytest.raises(ValueError), open_stage("train", tmp_path) as run:
        raise ValueError("boom")
    client = mlflow.MlflowClient(tracking_env)
    assert client.get_run(run.run_id).info.status == "FAILED"
    assert client.get_run(run.parent_id).info.status == "FAILED"


def test_dataset_has_name_absolute_source_digest_and_noise_tags(tracking_env, tmp_path):
    data_dir = tmp_path / "prepared"
    data_dir.mkdir()
    (data_dir / "train.npz").write_bytes(b"x")
    with open_stage("prepare", tmp_path) as run, warnings.catch_warnings():
        warnings.simplefilter("error")  # the "interpreted in multiple ways" warning is gone
        run.log_dataset(
            np.zeros((4, 8, 8, 1), np.uint8),
            np.arange(4),
            name="digits-symmetric-0.4",
            source=str(data_dir),
            digest=tracking.dvc_hash(data_dir),
            context="training",
            tags={"noise_type": "symmetric", "noise_rate": 0.4},
        )
    (inp,) = mlflow.MlflowClient(tracking_env).get_run(run.run_id).inputs.dataset_inputs
    assert inp.dataset.name == "digits-symmetric-0.4"
    assert inp.dataset.digest == tracking.dvc_hash(data_dir)
    assert inp.dataset.digest.endswith(".dir")
    assert data_dir.resolve().as_uri() in inp.dataset.source
    tags = {t.key: t.value for t in inp.tags}
    assert tags["noise_type"] == "symmetric" and tags["noise_rate"] == "0.4"


def tiny_ensemble(seed: int) -> Ensemble:
    torch.manual_seed(seed)
    config = ModelConfig("cnn", 1, 10, 2)
    return Ensemble([create_model(config), create_model(config)])


def test_registry_candidate_and_champion_rule_per_data_set(tracking_env, tmp_path, monkeypatch):
    """candidate = newest logged; a data set's champion moves only when the selection metric is
    >= its champion's; `champion` follows the data set evaluated last."""
    name = "unit-ensemble"
    client = mlflow.MlflowClient(tracking_env)
    example = torch.rand(3, 1, 8, 8)
    cases = (  # (metrics, data key)
        ({"test_accuracy": 0.5}, "data-a"),  # first ever on data-a
        ({"test_accuracy": 0.4}, "data-a"),  # worse
        ({"test_accuracy": 0.5}, "data-a"),  # equal
        ({"test_accuracy": 0.3}, "data-b"),  # worse, but the first on data-b
        ({"test_accuracy": 0.1, "val_accuracy": 0.9}, "data-a"),  # selected by validation
    )
    outcomes, versions = [], []
    for k, (metrics, data_key) in enumerate(cases):
        monkeypatch.setenv(tracking.GROUP_ENV, f"group-registry-{k}")
        checkpoint = tmp_path / f"final{k}.pt"
        checkpoint.write_bytes(f"weights {k}".encode())
        with open_stage("correct", tmp_path) as run:
            version = run.log_model(
                tiny_ensemble(k), example, checkpoint=checkpoint, registered_model=name
            )
        versions.append(version)
        assert str(client.get_model_version_by_alias(name, "candidate").version) == version
        with open_stage("evaluate", tmp_path) as run:
            outcomes.append(
                run.promote(checkpoint, metrics, registered_model=name, data_key=data_key)
            )
        champion = client.get_model_version_by_alias(name, f"champion-{data_key}")
        assert str(client.get_model_version_by_alias(name, "champion").version) == str(
            champion.version
        )
        if k == 3:
            assert str(champion.version) == versions[3]
            a = client.get_model_version_by_alias(name, "champion-data-a")
            assert str(a.version) == versions[2]  # data-b's run did not touch data-a's
    assert outcomes == [True, False, True, True, True]
    assert str(client.get_model_version_by_alias(name, "champion-data-a").version) == versions[4]
    assert versions == [str(v) for v in range(1, 6)]
    tags = client.get_model_version(name, versions[1]).tags
    assert tags["test_accuracy"] == "0.4" and tags["selection_metric"] == "test_accuracy"
    assert tags["selection_score"] == "0.4" and tags["data_key"] == "data-a"
    tags = client.get_model_version(name, versions[4]).tags
    assert tags["selection_metric"] == "val_accuracy" and tags["selection_score"] == "0.9"


def test_promote_without_a_matching_version_changes_nothing(tracking_env, tmp_path):
    checkpoint = tmp_path / "never-logged.pt"
    checkpoint.write_bytes(b"other weights")
    with open_stage("evaluate", tmp_path) as run:
        promoted = run.promote(
            checkpoint, {"test_accuracy": 1.0}, registered_model="unit-ensemble", data_key="x"
        )
    assert promoted is False
    tags = mlflow.MlflowClient(tracking_env).get_run(run.run_id).data.tags
    assert tags["model.promoted"] == "false"


def test_a_dead_stage_run_is_marked_killed_by_the_next_one(tracking_env, tmp_path):
    client = mlflow.MlflowClient(tracking_env)
    with open_stage("reap", tmp_path) as run:  # creates the experiment
        exp_id = client.get_run(run.run_id).info.experiment_id
    me = psutil.Process()
    host = socket.gethostname()

    def running(pid: int, started: float) -> str:
        tags = {
            tracking.STAGE_TAG: "reap",
            tracking.HOST_TAG: host,
            tracking.PID_TAG: str(pid),
            tracking.PID_START_TAG: repr(started),
        }
        return client.create_run(exp_id, tags=tags).info.run_id

    dead = running(os.getpid(), me.create_time() - 1000)  # the pid now belongs to another process
    alive = running(os.getpid(), me.create_time())
    with open_stage("reap", tmp_path):
        pass
    assert client.get_run(dead).info.status == "KILLED"
    assert client.get_run(dead).data.tags["noisyflow.killed"] == "process gone"
    assert client.get_run(alive).info.status == "RUNNING"
    client.set_terminated(alive)


def test_summary_reaches_parent_and_compare_prints_it(tracking_env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(tracking.GROUP_ENV, "group-compare")
    params = {"data.noise.type": "asymmetric", "data.noise.rate": 0.3, "method.ssl": "none"}
    with open_stage("evaluate", tmp_path, **params) as run:
        run.log_summary({"test_accuracy": 0.875, "detection_f1": 0.75, "bad": float("nan")})
    (newest, *_) = tracking.pipeline_runs(EXPERIMENT, last=1)
    assert newest["run_id"] == run.parent_id
    assert newest["metrics"] == {"test_accuracy": 0.875, "detection_f1": 0.75}
    line = row(newest)
    assert line["noise"] == "asymmetric 0.3" and line["test_acc"] == "0.8750"
    assert line["method"] == "gmm+none+prototype_vote" and line["model"] == "cnn/16"
    assert cli.main(["compare", "--experiment", EXPERIMENT, "--last", "1"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["run", "started", "status"]
    assert len(lines) == 1
    assert "asymmetric 0.3" in lines[0] and "0.8750" in lines[0] and "0.7500" in lines[0]


def test_compare_row_shows_the_selection_threshold():
    params = with_overrides(parse_params({}), {"selection.gmm.p_threshold": 0.6})
    run = {
        "name": "r",
        "status": "FINISHED",
        "start_ms": 0,
        "end_ms": 1000,
        "params": {k: str(v) for k, v in flatten(to_dict(params)).items()},  # as MLflow has them
        "metrics": {},
    }
    assert row(run)["p_thr"] == "0.6"


def test_format_table_aligns_columns():
    cells = dict.fromkeys(("run", "started", "status", "noise", "method", "model"), "x")
    cells.update(epochs="1+2", p_thr="0.5", test_acc="0.9", det_f1="-", wall="1m02s")
    header, line = format_table([cells]).splitlines()
    assert header.index("wall") + len("wall") == len(line)  # numbers right-aligned


def test_compare_unknown_experiment_is_an_error(tracking_env, capsys):
    assert cli.main(["compare", "--experiment", "no-such-experiment"]) == 2
    assert "no-such-experiment" in capsys.readouterr().err


class _Refusing(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_check_reachable_fails_fast_on_refusal_and_silence():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    silent = socket.socket()  # accepts connections (backlog) but never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        for port in (server.server_port, silent.getsockname()[1]):
            uri = f"http://127.0.0.1:{port}"
            start = time.monotonic()
            with pytest.raises(TrackingError, match=uri):
                tracking.check_reachable(uri, timeout=1.0)
            assert time.monotonic() - start < 5
    finally:
        server.shutdown()
        silent.close()


def test_stage_against_dead_server_exits_2_from_the_health_check_and_writes_nothing(tmp_path):
    """The stage fails on its own /health probe (5 s timeout), before MLflow's client and its
    HTTP retries could hold it up; asserted by the message, not a wall clock (flaky under load)."""
    uri = f"http://127.0.0.1:{free_port()}"
    params = write_params(tmp_path / "params.yaml")
    out = tmp_path / "data" / "prepared"
    env = subprocess_env(MLFLOW_TRACKING_URI=uri, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "stages.prepare", "--params", str(params), "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: MLflow tracking server {uri} is not reachable")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()
