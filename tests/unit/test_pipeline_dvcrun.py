"""pipeline.dvcrun: streaming a subprocess line by line and classifying dvc failures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from prefect.states import Completed, Failed

from pipeline.dvcrun import (
    StageError,
    TransientStageError,
    child_env,
    classify,
    is_transient,
    stream,
)
from pipeline.flows import STAGES
from tests.helpers import REPO


def test_stage_order_matches_dvc_yaml() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert tuple(stages) == STAGES
    for i, name in enumerate(STAGES):  # no stage needs an output of itself or a later stage
        later = set().union(*(_outs(stages[s]) for s in STAGES[i:]))
        assert not set(stages[name]["deps"]) & later, name


def _outs(stage: dict) -> set[str]:
    return {next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", [])}


def test_stream_passes_lines_in_order_while_running(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "print('one', flush=True); time.sleep(0.3)\n"
        "print('error: bad input', file=sys.stderr, flush=True)\n"
        "sys.exit(2)\n"
    )
    seen: list[tuple[str, float]] = []
    import time

    start = time.monotonic()
    rc, tail = stream(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=child_env(),
        on_line=lambda line: seen.append((line, time.monotonic() - start)),
    )
    assert rc == 2
    assert [line for line, _ in seen] == ["one", "error: bad input"] == tail
    assert seen[0][1] < seen[1][1] - 0.2  # the first line arrived before the process went on


@pytest.mark.parametrize(
    ("rc", "tail", "transient"),
    [
        (255, ["ERROR: Unable to acquire lock. Most likely another DVC process is running"], True),
        (255, ["error: MLflow tracking server http://x is not reachable (refused)"], True),
        (255, ["ERROR: failed to reproduce 'train': failed to run: exited with -9"], True),
        (-15, ["Running stage 'train':"], True),
        (
            255,
            [
                "error: data.test_size: must be between 1 and 1296, got 100000",
                "ERROR: failed to reproduce 'prepare': failed to run: python -m stages.prepare, "
                "exited with 2",
            ],
            False,
        ),
    ],
)
def test_classify(rc: int, tail: list[str], transient: bool) -> None:
    exc = classify(rc, ["Running stage 'x':", *tail], "dvc repro x")
    assert isinstance(exc, StageError)
    assert isinstance(exc, TransientStageError) is transient
    errors = [line for line in tail if line.lower().startswith("error")]
    if errors:  # the message is the error lines, not the whole log
        assert all(line in str(exc) for line in errors)
        assert "Running stage" not in str(exc)


def test_retry_condition_uses_the_exception_type() -> None:
    assert is_transient(None, None, Failed(data=TransientStageError("lock")))
    assert not is_transient(None, None, Failed(data=StageError("error: bad input")))
    assert not is_transient(None, None, Failed(data=ValueError("other")))
    assert not is_transient(None, None, Completed())
