"""The tiny pipeline against a real `mlflow server` on 127.0.0.1: one parent run with a child
per stage, tags, per-epoch metrics, output hashes equal to dvc.lock, the dataset input, the
artifacts, the registered model (loaded back and compared with the checkpoint), `noisyflow
compare`; then `dvc exp run --temp` logging into the workspace's local store."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml

from noisyflow import recipes
from noisyflow.data.prepare import load_prepared
from noisyflow.io import load_checkpoint
from noisyflow.models import ImageClassifier
from noisyflow.train.runtime import Runtime
from pipeline import cli
from tests.helpers import dvc, make_dvc_project, subprocess_env

STAGES = {"prepare", "warmup", "codivide", "train", "correct", "evaluate"}
MODEL = "noisyflow-ensemble"

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real tracking server (sqlite backend, proxied artifacts); yields its URI."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
    uri = f"http://127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
    cmd += ["--port", uri.rsplit(":", 1)[1], "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{tmp / 'server.db'}"]
    cmd += ["--artifacts-destination", str(tmp / "artifacts")]
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 (closed in finally)
    env = subprocess_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{(tmp / 'server.log').read_text()}")
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def pipeline(server, tmp_path_factory):
    """`dvc repro` of the tiny project logging to the server; returns (project, client, parent,
    {stage: child run})."""
    project = make_dvc_project(tmp_path_factory.mktemp("mlflow-pipeline") / "proj")
    env = subprocess_env(MLFLOW_TRACKING_URI=server)
    env.pop("NOISYFLOW_RUN_GROUP", None)
    dvc(project, "repro", env=env)
    client = mlflow.MlflowClient(server)
    exp = client.get_experiment_by_name("noisyflow")
    (parent,) = client.search_runs([exp.experiment_id], "tags.`noisyflow.kind` = 'pipeline'")
    children = client.search_runs(
        [exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    return project, client, parent, {c.data.tags["stage"]: c for c in children}


def test_one_parent_run_with_one_child_per_stage(pipeline):
    project, _, parent, children = pipeline
    assert set(children) == STAGES and len(children) == len(STAGES)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.strip()
    params_hash = hashlib.sha256((project / "params.yaml").read_bytes()).hexdigest()[:16]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["train.epochs"] == "2"  # all params, flattened
    for run in (parent, *children.values()):
        assert run.data.tags["git_commit"] == commit
        assert run.data.tags["git_dirty"] == "false"
        assert run.data.tags["params_hash"] == params_hash
    for stage, run in children.items():
        assert run.data.tags["dvc.stage"] == stage
        assert run.info.run_name == stage and run.info.status == "FINISHED"


def test_output_hashes_equal_dvc_lock(pipeline):
    project, _, _, children = pipeline
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    for stage, run in children.items():
        logged = {k.removeprefix("dvc.outs."): v for k, v in run.data.tags.items()}
        expected = {out["path"]: out["md5"] for out in lock[stage]["outs"]}
        assert {k: logged.get(k) for k in expected} == expected, stage
    assert children["prepare"].data.tags["dvc.outs.data/prepared"].endswith(".dir")


def test_per_epoch_metrics_use_the_epoch_as_step(pipeline):
    project, client, _, children = pipeline
    with open(project / "plots" / "train.csv") as fh:
        rows = list(csv.DictReader(fh))
    history = client.get_metric_history(children["train"].info.run_id, "test_accuracy")
    assert [m.step for m in history] == [int(r["epoch"]) for r in rows]
    assert [round(m.value, 6) for m in history] == [
        round(float(r["test_accuracy"]), 6) for r in rows
    ]
    warmup = client.get_metric_history(children["warmup"].info.run_id, "loss_net1")
    assert len(warmup) == 1


def test_every_stage_records_the_prepared_data_as_input(pipeline):
    project, _, _, children = pipeline
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    digest = lock["prepare"]["outs"][0]["md5"]
    for stage, run in children.items():
        (inp,) = run.inputs.dataset_inputs
        assert inp.dataset.name == "digits-symmetric-0.4", stage
        assert inp.dataset.digest == digest
        assert (project / "data" / "prepared").resolve().as_uri() in inp.dataset.source
        tags = {t.key: t.value for t in inp.tags}
        assert tags["noise_type"] == "symmetric" and tags["noise_rate"] == "0.4"


def artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


@pytest.mark.parametrize(
    ("stage", "wanted"),
    [
        ("codivide", {"plots/codivide_gmm.png"}),
        ("train", {"plots/train_curves.png", "plots/train.csv"}),
        ("correct", {"outputs/label_issues.csv", "models/final.pt"}),
        ("evaluate", {"plots/confusion.png", "metrics.json"}),
    ],
)
def test_artifacts_users_look_at_are_in_the_child_run(pipeline, stage, wanted):
    _, client, _, children = pipeline
    paths = artifact_paths(client, children[stage].info.run_id)
    assert {f"outputs/{p}" for p in wanted} <= paths


def test_model_is_registered_promoted_and_predicts_like_the_checkpoint(
    pipeline, server, monkeypatch
):
    project, client, _, children = pipeline
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)  # models:/ URIs resolve against it
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    mlflow.set_tracking_uri(server)  # an in-process stage test may have set another store
    candidate = client.get_model_version_by_alias(MODEL, "candidate")
    assert candidate.run_id == children["correct"].info.run_id  # the final model
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.version == candidate.version
    data_key = champion.tags["data_key"]  # champions are kept per prepared data set
    assert (
        client.get_model_version_by_alias(MODEL, f"champion-{data_key}").version == champion.version
    )
    assert champion.tags["selection_metric"] == "test_accuracy"  # no val split in this project
    assert children["evaluate"].data.tags["model.promoted"] == "true"
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    images = np.array(load_prepared(project / "data" / "prepared").x_test)  # uint8 (N, H, W, C)
    payload = load_checkpoint(project / "models" / "final.pt")
    _, nets = recipes.load_nets(payload, Runtime.cpu(), origin="final.pt")
    expected = ImageClassifier(nets).eval()(torch.from_numpy(images)).detach().numpy()
    got = np.asarray(model.predict(images))
    assert got.shape == (200, 10) and np.allclose(got.sum(1), 1.0, atol=1e-5)
    assert np.array_equal(got.argmax(1), expected.argmax(1))
    info = mlflow.models.get_model_info(f"models:/{MODEL}@champion")
    assert info.metadata["classes"] == [str(i) for i in range(10)]
    assert info.metadata["preprocessing"]["size"] == [8, 8]


def test_mlflow_models_predict_cli_serves_raw_image_arrays(pipeline, server, tmp_path):
    """`mlflow models predict` on the registered model with a JSON array of uint8 images."""
    project, *_ = pipeline
    images = np.array(load_prepared(project / "data" / "prepared").x_test[:3])
    (tmp_path / "input.json").write_text(json.dumps({"inputs": images.tolist()}))
    out = tmp_path / "preds.json"
    cmd = [sys.executable, "-m", "mlflow", "models", "predict", "-m", f"models:/{MODEL}@champion"]
    cmd += ["-i", str(tmp_path / "input.json"), "-t", "json", "-o", str(out)]
    cmd += ["--env-manager", "local"]
    proc = subprocess.run(
        cmd, env=subprocess_env(MLFLOW_TRACKING_URI=server), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    preds = np.asarray(json.loads(out.read_text())["predictions"])
    payload = load_checkpoint(project / "models" / "final.pt")
    _, nets = recipes.load_nets(payload, Runtime.cpu(), origin="final.pt")
    expected = ImageClassifier(nets).eval()(torch.from_numpy(images)).detach().numpy()
    assert preds.shape == (3, 10) and np.allclose(preds, expected, atol=1e-5)


def test_parent_carries_headline_metrics_and_compare_prints_them(
    pipeline, server, monkeypatch, capsys
):
    project, _, parent, _ = pipeline
    metrics = yaml.safe_load((project / "metrics.json").read_text())
    assert parent.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert parent.data.metrics["detection_f1"] == pytest.approx(metrics["detection_f1"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    assert cli.main(["compare", "--last", "5"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert "test_acc" in header and len(lines) == 1
    assert parent.info.run_name in lines[0] and f"{metrics['test_accuracy']:.4f}" in lines[0]


def test_exp_run_temp_logs_into_the_workspace_store(pipeline):
    """No MLFLOW_TRACKING_URI: the default store is <workspace>/mlflow.db via DVC_ROOT, also
    when `dvc exp run --temp` runs the stages in .dvc/tmp/exps/...; the stages that ran log."""
    project = pipeline[0]
    subprocess.run(["git", "add", "dvc.lock"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "lock"], cwd=project, env=subprocess_env(), check=True)
    env = subprocess_env()
    for name in ("MLFLOW_TRACKING_URI", "NOISYFLOW_RUN_GROUP"):
        env.pop(name, None)
    out = dvc(project, "exp", "run", "--temp", "-S", "train.epochs=1", env=env).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out)) - {"sources"}  # logs no MLflow run
    assert {"train", "correct", "evaluate"} <= ran
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("noisyflow")
    (parent,) = client.search_runs([exp.experiment_id], "tags.`noisyflow.kind` = 'pipeline'")
    children = client.search_runs(
        [exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(c.data.tags["stage"] for c in children) == sorted(ran)
    assert parent.info.run_name == parent.data.tags["dvc.exp_name"]
    outs = [k for c in children for k in c.data.tags if k.startswith("dvc.outs.")]
    assert "dvc.outs.models/train.pt" in outs and not any(".dvc" in k for k in outs)
    assert client.get_model_version_by_alias(MODEL, "candidate").version in (1, "1")
    assert not list(Path(project, ".dvc", "tmp").rglob("mlflow.db"))
    train = next(c for c in children if c.data.tags["stage"] == "train")
    assert "outputs/plots/train.csv" in artifact_paths(client, train.info.run_id)
    assert train.info.artifact_uri.startswith((project / "mlruns").as_uri())
