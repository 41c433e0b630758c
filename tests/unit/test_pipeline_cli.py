"""The `noisyflow run|serve|sweep` subcommands: parsing, and bad input failing before Prefect."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import build_parser, main
from tests.helpers import write_params


def test_serve_takes_one_schedule() -> None:
    args = build_parser().parse_args(["serve", "--cron", "0 2 * * *", "--name", "nightly"])
    assert (args.cron, args.interval, args.name) == ("0 2 * * *", None, "nightly")
    assert build_parser().parse_args(["serve", "--interval", "3600"]).interval == 3600.0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--cron", "0 2 * * *", "--interval", "60"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve"])


def test_run_takes_workspace_and_retry_options() -> None:
    args = build_parser().parse_args(
        ["run", "--project-dir", "ws", "--retries", "0", "--retry-delay", "1.5", "-S", "seed=1"]
    )
    assert (args.project_dir, args.retries, args.retry_delay) == ("ws", 0, 1.5)
    assert args.set_param == ["seed=1"]


def test_run_bad_key_names_the_workspace_params(tmp_path: Path, capsys) -> None:
    write_params(tmp_path / "params.yaml")
    assert main(["run", "--project-dir", str(tmp_path), "-S", "train.epochz=1"]) == 2
    assert "unknown key 'train.epochz'" in capsys.readouterr().err


def test_sweep_collects_sets() -> None:
    args = build_parser().parse_args(
        ["sweep", "--set", "data.noise.rate=0.2,0.4", "--set", "method.correction=prototype,none"]
    )
    assert args.set == ["data.noise.rate=0.2,0.4", "method.correction=prototype,none"]


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "-S", "train.epochz=1"],
        ["serve", "--cron", "0 2 * * *", "-S", "train.epochz=1"],
        ["sweep", "--set", "train.epochz=1,2"],
    ],
)
def test_bad_key_exits_2_before_any_stage(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Every subcommand validates before a Prefect flow (or its ephemeral server) starts; run /
    sweep validate again under the workspace lock (nobody else changes params.yaml then). Either
    way: exit 2, the key named, nothing run or written."""
    from pipeline import flows

    def no_flow(*args, **kwargs):
        raise AssertionError("a flow started on bad params")

    for name in ("pipeline", "sweep"):  # also pipeline.serve: a function has no .serve
        monkeypatch.setattr(flows, name, no_flow)
    params = write_params(tmp_path / "params.yaml")
    before = params.read_text()
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "unknown key 'train.epochz'" in capsys.readouterr().err
    assert params.read_text() == before
    assert not (tmp_path / "data").exists() and not (tmp_path / "dvc.lock").exists()
