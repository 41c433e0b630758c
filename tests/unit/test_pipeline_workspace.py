"""pipeline.workspace: the workspace lock (threads and processes) and params overrides."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from noisyflow.config import load_params
from noisyflow.errors import ParamsError
from pipeline.workspace import (
    LOCK_PATH,
    apply_overrides,
    parse_assignments,
    parse_sweep,
    validate_overrides,
    workspace_lock,
)
from tests.helpers import write_params


def test_second_holder_waits_then_gives_up(tmp_path: Path) -> None:
    held, release, results = threading.Event(), threading.Event(), []

    def first() -> None:
        with workspace_lock(tmp_path, wait_s=0) as ok:
            results.append(("first", ok))
            held.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(10)
    start = time.monotonic()
    with workspace_lock(tmp_path, wait_s=1.0) as ok:
        results.append(("second", ok))
    waited = time.monotonic() - start
    release.set()
    thread.join(10)
    assert results == [("first", True), ("second", False)]
    assert 0.9 <= waited < 5
    with workspace_lock(tmp_path, wait_s=0) as ok:  # free again once the first let go
        assert ok


def test_waiting_holder_gets_the_lock_when_released(tmp_path: Path) -> None:
    release = threading.Event()
    got = threading.Event()

    def first() -> None:
        with workspace_lock(tmp_path, wait_s=0):
            got.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    got.wait(10)
    threading.Timer(0.6, release.set).start()
    with workspace_lock(tmp_path, wait_s=10) as ok:
        assert ok
    thread.join(10)


def test_lock_held_by_another_process(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from pipeline.workspace import workspace_lock\n"
        "with workspace_lock(Path(sys.argv[1]), 0) as ok:\n"
        "    print(ok, flush=True); time.sleep(30)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "True"
        with workspace_lock(tmp_path, wait_s=0.5) as ok:
            assert not ok
        assert (tmp_path / LOCK_PATH).read_text().strip() == str(proc.pid)
    finally:
        proc.kill()
        proc.wait(10)
    with workspace_lock(tmp_path, wait_s=2) as ok:  # the kernel freed it with the process
        assert ok


def test_apply_overrides_keeps_comments_and_validates(tmp_path: Path) -> None:
    write_params(tmp_path / "params.yaml")
    overrides = {"data.noise.rate": 0.2, "method.correction": "none", "train.epochs": 3}
    validate_overrides(tmp_path, overrides)
    apply_overrides(tmp_path, overrides)
    params = load_params(tmp_path / "params.yaml")
    assert (params.data.noise.rate, params.method.correction, params.train.epochs) == (
        0.2,
        "none",
        3,
    )
    assert params.model.width == 4  # untouched keys keep their values


def test_apply_overrides_keeps_yaml_comments(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("seed: 0  # the seed\ntrain:\n  epochs: 30  # epochs\n")
    apply_overrides(tmp_path, {"train.epochs": 2})
    text = path.read_text()
    assert "seed: 0  # the seed" in text
    assert re.search(r"epochs: 2 +# epochs", text)
    assert yaml.safe_load(text) == {"seed": 0, "train": {"epochs": 2}}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.epochz": 3}, "did you mean 'train.epochs'"),
        ({"data.noise.rate": 1.5}, "data.noise.rate"),
        ({"train.epochs": "many"}, "expected an integer"),
    ],
)
def test_validate_overrides_rejects_bad_input(tmp_path: Path, overrides, message) -> None:
    write_params(tmp_path / "params.yaml")
    before = (tmp_path / "params.yaml").read_text()
    with pytest.raises(ParamsError, match=message):
        validate_overrides(tmp_path, overrides)
    assert (tmp_path / "params.yaml").read_text() == before


def test_parse_assignments_reads_yaml_scalars() -> None:
    got = parse_assignments(["data.noise.rate=0.2", "method.correction=none", "a.b=true", "c=3"])
    assert got == {"data.noise.rate": 0.2, "method.correction": "none", "a.b": True, "c": 3}
    with pytest.raises(ParamsError, match="KEY=VALUE"):
        parse_assignments(["no-equals-sign"])


def test_parse_sweep_is_the_cartesian_product() -> None:
    sets = parse_sweep(["data.noise.rate=0.2,0.4", "method.correction=prototype,none"])
    assert sets == [
        {"data.noise.rate": 0.2, "method.correction": "prototype"},
        {"data.noise.rate": 0.2, "method.correction": "none"},
        {"data.noise.rate": 0.4, "method.correction": "prototype"},
        {"data.noise.rate": 0.4, "method.correction": "none"},
    ]


def test_validate_overrides_checks_every_set(tmp_path: Path) -> None:
    """A sweep validates all its combinations at once: a bad one among good ones is named."""
    write_params(tmp_path / "params.yaml")
    good = {"train.epochs": 3}
    validate_overrides(tmp_path, good, {"data.noise.rate": 0.4})
    with pytest.raises(ParamsError, match="data.noise.rate"):
        validate_overrides(tmp_path, good, {"data.noise.rate": 1.5}, good)
