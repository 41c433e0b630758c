"""The GPU benchmark's --smoke mode runs its code path on CPU (CI cannot lend a GPU)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import CIFAR_PACK, REPO, subprocess_env

pytestmark = pytest.mark.integration


def test_gpu_benchmark_smoke_runs_the_fast_and_reference_presets(tmp_path):
    if not CIFAR_PACK.is_file():
        pytest.skip(f"the CIFAR-10 pack is not at {CIFAR_PACK}")
    out = tmp_path / "gpu.json"
    cmd = [sys.executable, "benchmarks/cifar10_gpu.py", "--smoke", "--skip-ce"]
    cmd += ["--data", str(CIFAR_PACK)]
    cmd += ["--settings", "sym-50", "--reference-epochs", "1", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["run"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"fast sym-50", "reference (1+1 epochs)"}
    fast = rows["fast sym-50"]
    assert 0 <= fast["test_accuracy_last"] <= 1 and fast["stages_s"].keys() >= {"warmup", "train"}
    assert "| fast sym-50 |" in proc.stdout and "| reference (1+1 epochs) |" in proc.stdout


def _methods(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "benchmarks/methods.py", *args]
    env = {**subprocess_env(), "NOISYFLOW_THREADS": "1"}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)


def test_method_benchmark_records_curves_and_replays_the_saved_decision(tmp_path):
    """--curves records every epoch of each phase of the budget's split; --save-evidence keeps
    the decision's input, and --replay under the same `correct:` gives the run's own detection
    F1, under another clean_margin another one."""
    out, ev = tmp_path / "rows.jsonl", tmp_path / "evidence"
    tiny = ["model.width=4", "correction.prototype.rounds=1", "correction.prototype.epochs=1"]
    proc = _methods(
        "--suite", "digits", "--settings", "sym-40", "--methods", "dividemix+selflearning",
        "--seeds", "0",
        "--budget", "5", "--curves", "--save-evidence", str(ev), "--out", str(out),
        *(x for kv in tiny for x in ("--set", kv)),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert row["epochs"] == 4  # warm-up 3 + train 1 (+ 1 self-learning epoch = the budget 5)
    phases = [(c["phase"], c["epoch"]) for c in row["curve"]]
    assert phases == [("warmup", 0), ("warmup", 1), ("warmup", 2), ("train", 0), ("correct", 0)]
    assert all(0 <= c["test_accuracy"] <= 1 for c in row["curve"] if c["phase"] != "correct")
    npz = ev / "digits-sym-40-seed0-dividemix+selflearning.npz"
    assert row["evidence"] == str(npz)

    same = _methods("--replay", str(npz))
    assert same.returncode == 0, same.stderr[-2000:]
    f1 = float(same.stdout.splitlines()[2].split("|")[2])
    assert f1 == round(100 * row["detection_f1"], 1)
    never = _methods("--replay", str(npz), "--set", "correct.clean_margin=5")
    flagged = float(never.stdout.splitlines()[2].split("|")[3])
    assert flagged < float(same.stdout.splitlines()[2].split("|")[3])


def test_method_benchmark_keeps_earlier_rows_and_resumes_per_override(tmp_path):
    """An --out that holds rows is refused without --resume or --overwrite (exit 2, the file as
    it was); --resume skips a cell only when it was measured under the same --set, and the table
    names rows measured under other overrides apart from the method's own."""
    out = tmp_path / "rows.jsonl"
    cell = ["--suite", "digits", "--settings", "sym-40", "--methods", "ce", "--seeds", "0",
            "--budget", "2", "--out", str(out)]  # fmt: skip
    first = _methods(*cell)
    assert first.returncode == 0, first.stderr[-2000:]
    before = out.read_text()

    refused = _methods(*cell)
    assert refused.returncode == 2
    assert f"{out} already holds results: pass --resume" in refused.stderr
    assert out.read_text() == before

    same = _methods(*cell, "--resume")
    assert same.returncode == 0, same.stderr[-2000:]
    assert "\n0 runs in" in same.stdout and out.read_text() == before

    other = _methods(*cell, "--resume", "--set", "model.width=4")
    assert other.returncode == 0, other.stderr[-2000:]
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["set"] for r in rows] == [{}, {"model.width": 4}]
    assert "\n1 runs in" in other.stdout
    assert "\n| ce | " in other.stdout and "\n| ce model.width=4 | " in other.stdout

    fresh = _methods(*cell, "--overwrite", "--set", "model.width=4")
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert [json.loads(x)["set"] for x in out.read_text().splitlines()] == [{"model.width": 4}]
