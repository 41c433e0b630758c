"""The GPU benchmark's --smoke mode runs its code path on CPU (CI cannot lend a GPU)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO, subprocess_env

pytestmark = pytest.mark.integration


def test_gpu_benchmark_smoke_runs_the_fast_and_reference_presets(tmp_path):
    out = tmp_path / "gpu.json"
    cmd = [sys.executable, "benchmarks/cifar10_gpu.py", "--smoke", "--skip-ce"]
    cmd += ["--settings", "sym-50", "--reference-epochs", "1", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["run"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"fast sym-50", "reference (1+1 epochs)"}
    fast = rows["fast sym-50"]
    assert 0 <= fast["test_accuracy_last"] <= 1 and fast["stages_s"].keys() >= {"warmup", "train"}
    assert "| fast sym-50 |" in proc.stdout and "| reference (1+1 epochs) |" in proc.stdout
