"""Crash and resume for real: SIGKILL the `warmup` stage process mid-epoch, rerun `dvc repro`,
then the same for `train`; the resumed pipeline ends bit-for-bit identical (every DVC output
hash) to an uninterrupted one, and MLflow shows the killed runs as KILLED and the resumed ones
tagged with the epoch they resumed at."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.helpers import dvc, make_dvc_project, subprocess_env

pytestmark = pytest.mark.integration

PARAMS = {"warmup.epochs": 4, "train.epochs": 4, "model.width": 8}


def out_hashes(root: Path) -> dict:
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {
        (stage, o["path"]): o.get("md5") for stage, entry in lock.items() for o in entry["outs"]
    }


def kill_stage_mid_epoch(root: Path, env: dict, stage: str, timeout: float = 300) -> int:
    """Start `dvc repro`, wait for `stage`'s first resume checkpoint, SIGKILL the stage process
    (not DVC) and wait for `dvc repro` to fail. Returns the epoch the checkpoint had reached."""
    import torch

    state = root / ".noisyflow" / "state" / f"{stage}.pt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + timeout
    victim = None
    while victim is None:
        assert proc.poll() is None, f"dvc repro ended before {stage} checkpointed"
        assert time.monotonic() < deadline, f"no checkpoint of {stage} in {timeout} s"
        if state.is_file():
            for child in psutil.Process(proc.pid).children(recursive=True):
                if f"stages.{stage}" in " ".join(child.cmdline()):
                    victim = child
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, out
    saved = torch.load(state, weights_only=True)
    return int(saved["epoch"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    reference = make_dvc_project(base / "reference", PARAMS)
    env_ref = subprocess_env(MLFLOW_TRACKING_URI=f"sqlite:///{reference / 'mlflow.db'}")
    start = time.monotonic()
    dvc(reference, "repro", env=env_ref)
    uninterrupted_s = time.monotonic() - start

    crashed = make_dvc_project(base / "crashed", PARAMS)
    env = subprocess_env(MLFLOW_TRACKING_URI=f"sqlite:///{crashed / 'mlflow.db'}")
    start = time.monotonic()
    epochs = {"warmup": kill_stage_mid_epoch(crashed, env, "warmup")}
    epochs["train"] = kill_stage_mid_epoch(crashed, env, "train")
    out = dvc(crashed, "repro", env=env).stdout
    crashed_s = time.monotonic() - start
    print(f"uninterrupted {uninterrupted_s:.0f} s, with two crashes {crashed_s:.0f} s")
    return reference, crashed, epochs, out


def test_a_killed_stage_resumes_from_its_last_checkpoint(runs):
    _, crashed, epochs, out = runs
    assert 1 <= epochs["warmup"] < PARAMS["warmup.epochs"]
    assert 1 <= epochs["train"] < PARAMS["train.epochs"]
    assert f"train: resumed from the checkpoint after epoch {epochs['train'] - 1}" in out
    assert not (crashed / ".noisyflow" / "state" / "train.pt").exists()  # cleared when done


REPORT = ("evaluate", "outputs/report.html")  # names its own MLflow run: compared masked


def test_resumed_pipeline_is_bit_identical_to_an_uninterrupted_one(runs):
    """Two runs with the same params and seed on CPU, one of them killed twice: every DVC
    output hash is equal (the determinism guarantee), except the report, whose only
    differences are its MLflow run ids and links."""
    reference, crashed, _, _ = runs
    ref, got = out_hashes(reference), out_hashes(crashed)
    assert set(ref) == set(got) and len(ref) > 20
    assert {k: v for k, v in got.items() if k != REPORT} == {
        k: v for k, v in ref.items() if k != REPORT
    }
    for path in ("outputs/label_issues.csv", "metrics.json", "models/final.pt"):
        assert (crashed / path).read_bytes() == (reference / path).read_bytes()

    def masked(root: Path) -> str:
        text = (root / REPORT[1]).read_text()
        return re.sub(r"[0-9a-f]{32}", "<run id>", text.replace(str(root), "<project>"))

    assert masked(crashed) == masked(reference)


def test_mlflow_marks_killed_runs_and_tags_resumed_ones(runs):
    import mlflow

    _, crashed, epochs, _ = runs
    client = mlflow.MlflowClient(f"sqlite:///{crashed / 'mlflow.db'}")
    exp = client.get_experiment_by_name("noisyflow")
    for stage in ("warmup", "train"):
        found = client.search_runs([exp.experiment_id], f"tags.stage = '{stage}'")
        status = sorted(r.info.status for r in found)
        assert status == ["FINISHED", "KILLED"], (stage, status)
        killed = next(r for r in found if r.info.status == "KILLED")
        done = next(r for r in found if r.info.status == "FINISHED")
        assert done.data.tags["noisyflow.resumed_at_epoch"] == str(epochs[stage])
        assert done.data.tags["noisyflow.resumed_from_run"] == killed.info.run_id
