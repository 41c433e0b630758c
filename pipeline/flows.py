"""Prefect flows over the DVC pipeline: one task per `dvc repro --single-item <stage>`.

DVC decides what reruns (tasks never cache), MLflow groups the stage runs under one parent
(NOISYFLOW_RUN_GROUP = the flow run id), and the flow only orders stages, applies params
overrides, retries transient failures, holds the workspace lock and publishes a report.

    noisyflow run -S data.noise.rate=0.2 -n rate-0.2       # once (temporary server if needed)
    noisyflow serve --cron "0 2 * * *" --name nightly      # a scheduled deployment
    noisyflow sweep --set data.noise.rate=0.2,0.4          # one DVC experiment per set
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Cancelled, State

from noisyflow.errors import NoisyflowError
from pipeline import report
from pipeline.dvcrun import StageError, child_env, is_transient, run_dvc
from pipeline.workspace import (
    apply_overrides,
    parse_assignments,
    parse_sweep,
    validate_overrides,
    workspace_lock,
)

STAGES = (
    "sources",
    "prepare",
    "warmup",
    "codivide",
    "train",
    "correct",
    "evaluate",
)  # dvc.yaml order
REPORT_KEY = "noisyflow-report"
SWEEP_KEY = "noisyflow-sweep"


def _setting(value: float | None, env: str, default: float) -> float:
    """A flow parameter, else env `env`, else `default`."""
    return float(value if value is not None else os.environ.get(env, default))


def _dvc(args: list[str], project_dir: str, group: str) -> None:
    """Run `dvc ARGS`, streaming to the task's logger, with the MLflow group in its env."""
    env = child_env(NOISYFLOW_RUN_GROUP=group, PREFECT_FLOW_RUN_ID=str(flow_run.id or ""))
    run_dvc(args, cwd=Path(project_dir), env=env, on_line=get_run_logger().info)


@task(cache_policy=NO_CACHE, retry_condition_fn=is_transient, task_run_name="{stage}")
def run_stage(stage: str, project_dir: str, group: str) -> None:
    """One DVC stage; DVC skips it when its deps and params are unchanged."""
    _dvc(["repro", "--single-item", stage], project_dir, group)


@task(cache_policy=NO_CACHE, retry_condition_fn=is_transient, task_run_name="exp-{name}")
def run_experiment(name: str, project_dir: str, group: str) -> None:
    """The whole pipeline as the DVC experiment `name` (workspace params)."""
    _dvc(["exp", "run", "-n", name], project_dir, group)


@task(cache_policy=NO_CACHE, retry_condition_fn=is_transient, task_run_name="save-{name}")
def save_experiment(name: str, project_dir: str) -> None:
    """Record the workspace as the DVC experiment `name`."""
    _dvc(["exp", "save", "-n", name], project_dir, "")


@task(cache_policy=NO_CACHE)
def publish_report(project_dir: str, group: str, experiment: str | None) -> dict[str, Any]:
    """Markdown artifact: headline metrics, label issues, MLflow parent run."""
    from noisyflow import tracking
    from noisyflow.config import load_params

    root = Path(project_dir)
    name = load_params(root / "params.yaml").tracking.experiment
    parent = tracking.find_group_run(group, experiment=name, root=root)
    summary = {
        "metrics": report.read_metrics(root),
        "label_issues": report.count_label_issues(root),
        "mlflow_parent_run_id": parent["run_id"] if parent else None,
    }
    text = report.run_report(
        metrics=summary["metrics"],
        label_issues=summary["label_issues"],
        parent=parent,
        flow_run_id=group,
        experiment=experiment,
        report=report.find_report(root),
    )
    create_markdown_artifact(text, key=REPORT_KEY, description="noisyflow run report")
    return summary


BUSY = "Busy"  # the state name of a run that found the workspace held by another run


def _busy(root: Path, wait_s: float) -> State:
    """Not a success: a distinct Cancelled state named Busy (the CLI exits with code 3)."""
    msg = f"busy: another run holds the workspace lock of {root} (waited {wait_s:.0f} s)"
    get_run_logger().warning(msg)
    return Cancelled(name=BUSY, message=msg)


@flow(name="noisyflow-pipeline")
def pipeline(
    project_dir: str = ".",
    overrides: dict[str, Any] | None = None,
    experiment: str | None = None,
    retries: int | None = None,
    retry_delay_seconds: float | None = None,
    lock_wait_s: float | None = None,
) -> Any:
    """Run every DVC stage in order (retries: env NOISYFLOW_STAGE_RETRIES, default 2)."""
    root = Path(project_dir).resolve()
    wait_s = _setting(lock_wait_s, "NOISYFLOW_LOCK_WAIT_S", 600)
    stage_task = run_stage.with_options(
        retries=int(_setting(retries, "NOISYFLOW_STAGE_RETRIES", 2)),
        retry_delay_seconds=_setting(retry_delay_seconds, "NOISYFLOW_RETRY_DELAY_S", 30),
    )
    group = str(flow_run.id)
    with workspace_lock(root, wait_s, group) as held:
        if not held:
            return _busy(root, wait_s)
        # validated under the lock: nobody else is changing params.yaml now
        validate_overrides(root, overrides or {})
        apply_overrides(root, overrides or {})
        for stage in STAGES:
            stage_task(stage, str(root), group)
        if experiment:
            save_experiment(experiment, str(root))
        return publish_report(str(root), group, experiment)


@flow(name="noisyflow-sweep")
def sweep(
    param_sets: list[dict[str, Any]],
    project_dir: str = ".",
    names: list[str] | None = None,
    retries: int | None = None,
    lock_wait_s: float | None = None,
) -> Any:
    """One DVC experiment per override set (each from the same baseline params), compared."""
    root = Path(project_dir).resolve()
    names = names or [f"{flow_run.name}-{i + 1}" for i in range(len(param_sets))]
    exp_task = run_experiment.with_options(
        retries=int(_setting(retries, "NOISYFLOW_STAGE_RETRIES", 2)),
        retry_delay_seconds=_setting(None, "NOISYFLOW_RETRY_DELAY_S", 30),
    )
    wait_s = _setting(lock_wait_s, "NOISYFLOW_LOCK_WAIT_S", 600)
    with workspace_lock(root, wait_s, str(flow_run.id)) as held:
        if not held:
            return _busy(root, wait_s)
        for overrides in param_sets:
            validate_overrides(root, overrides)
        baseline = (root / "params.yaml").read_text()
        results = []
        try:
            for name, overrides in zip(names, param_sets, strict=True):
                (root / "params.yaml").write_text(baseline)
                apply_overrides(root, overrides)
                exp_task(name, str(root), f"{flow_run.id}/{name}")
                results.append(
                    {"name": name, "overrides": overrides, "metrics": report.read_metrics(root)}
                )
        finally:  # failed or not, the workspace keeps the params it had
            (root / "params.yaml").write_text(baseline)
    get_run_logger().info("sweep results:\n%s", report.sweep_report(results))
    create_markdown_artifact(report.sweep_report(results), key=SWEEP_KEY)
    create_table_artifact(report.sweep_rows(results), key=f"{SWEEP_KEY}-table")
    return results


EXIT_BUSY = 3


def exit_code(state: State) -> int:
    """0 completed, 2 bad params or input (the stage's one-line error), 3 workspace busy,
    1 any other failure."""
    if state.is_completed():
        return 0
    if state.name == BUSY:
        print(f"error: {state.message}", file=sys.stderr)
        return EXIT_BUSY
    exc = state.result(raise_on_failure=False) if state.is_failed() else None
    if isinstance(exc, NoisyflowError) or (isinstance(exc, StageError) and "(exit 2)" in str(exc)):
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1


def run_pipeline_cli(args: argparse.Namespace) -> int:
    """`noisyflow run`: the flow once on a workspace (see exit_code for the exit status).

    Bad params fail here, before a Prefect flow run (or an ephemeral server) starts; the flow
    validates again under the workspace lock."""
    overrides = parse_assignments(args.set_param)
    validate_overrides(Path(args.project_dir), overrides)
    state = pipeline(
        project_dir=str(Path(args.project_dir).resolve()),
        overrides=overrides,
        experiment=args.experiment,
        retries=args.retries,
        retry_delay_seconds=args.retry_delay,
        return_state=True,
    )
    print(f"flow run {state.name}: {state.message or ''}".rstrip(": "))
    return exit_code(state)


def serve_cli(args: argparse.Namespace) -> int:
    """`noisyflow serve`: serve the flow as a deployment on a cron or interval schedule."""
    overrides = parse_assignments(args.set_param)
    validate_overrides(Path(args.project_dir), overrides)
    params = {"project_dir": str(Path(args.project_dir).resolve()), "overrides": overrides}
    from prefect.types.entrypoint import EntrypointType

    pipeline.serve(
        name=args.name,
        cron=args.cron,
        interval=args.interval,
        parameters=params,
        entrypoint_type=EntrypointType.MODULE_PATH,  # runs load `pipeline.flows`, not a file path
    )
    return 0


def sweep_cli(args: argparse.Namespace) -> int:
    """`noisyflow sweep`: one experiment per combination of the --set values (each validated
    before the flow starts, and again under the workspace lock)."""
    param_sets = parse_sweep(args.set)
    validate_overrides(Path(args.project_dir), *param_sets)
    state = sweep(param_sets=param_sets, project_dir=args.project_dir, return_state=True)
    return exit_code(state)
