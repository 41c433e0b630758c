"""What every stage shell shares: argument parsing, params, runtime set-up, the MLflow run,
and turning noisyflow errors into a one-line message and exit code 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from noisyflow import recipes, tracking
from noisyflow.artifacts import load_prepared
from noisyflow.config import Params, flatten, load_params, to_dict
from noisyflow.engine import configure_threads, resolve_device, seed_everything
from noisyflow.errors import NoisyflowError
from noisyflow.io import load_checkpoint
from noisyflow.recipes import Prepared


@dataclass
class StageContext:
    params: Params
    run: tracking.StageRun
    device: torch.device


def parser(stage: str, paths: dict[str, str]) -> argparse.ArgumentParser:
    """--params plus one --<name> option per input/output path (defaults match dvc.yaml)."""
    ap = argparse.ArgumentParser(prog=f"python -m stages.{stage}", description=__doc__)
    ap.add_argument("--params", default="params.yaml", type=Path)
    for name, default in paths.items():
        ap.add_argument(f"--{name.replace('_', '-')}", dest=name, default=default, type=Path)
    return ap


@contextmanager
def stage(name: str, params_file: Path, sections: tuple[str, ...]) -> Iterator[StageContext]:
    """Load params, set threads/seed/device, and log into this stage's MLflow child run."""
    params = load_params(params_file)
    configure_threads(params.runtime.threads)
    seed_everything(params.seed)
    device = resolve_device(params.runtime.device)
    every = flatten(to_dict(params))
    with tracking.stage_run(
        name, experiment=params.tracking.experiment, params_file=params_file, params=every
    ) as run:
        tree = to_dict(params)
        run.log_params(flatten({s: tree[s] for s in sections}))
        yield StageContext(params, run, device)


def entrypoint(main: Callable[[list[str] | None], None]) -> Callable[[list[str] | None], None]:
    """Wrap a stage main: noisyflow errors print 'error: ...' to stderr and exit with code 2."""

    def run(argv: list[str] | None = None) -> None:
        try:
            main(argv)
        except NoisyflowError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    return run


def read_prepared(ctx: StageContext, prepared_dir: Path) -> Prepared:
    """Load the prepared data and record it as this run's training input."""
    prepared = load_prepared(prepared_dir)
    log_prepared_input(ctx, prepared_dir, prepared)
    return prepared


def read_nets(ctx: StageContext, checkpoint: Path) -> list[torch.nn.Module]:
    """Both networks of a checkpoint, on the stage's device."""
    return recipes.load_nets(load_checkpoint(checkpoint), ctx.device)[1]


def log_prepared_input(ctx: StageContext, prepared_dir: Path, prepared: Prepared) -> None:
    """Record the prepared data (content digest = its DVC hash) as this run's training input."""
    meta = prepared.meta
    ctx.run.log_dataset(
        prepared.x_train,
        prepared.labels,
        name=f"{ctx.params.data.source}-{meta.get('noise_type')}-{meta.get('noise_rate')}",
        source=str(prepared_dir),
        digest=tracking.dvc_hash(prepared_dir),
        context="training",
        tags={
            "noise_type": meta.get("noise_type"),
            "noise_rate": meta.get("noise_rate"),
            "realised_noise_rate": meta.get("realised_noise_rate"),
        },
    )


def log_ensemble(
    ctx: StageContext, nets: list[torch.nn.Module], prepared: Prepared, checkpoint: Path
) -> None:
    """Log both networks as one `Ensemble` model and register it as the `candidate` version."""
    from noisyflow.data import to_tensor
    from noisyflow.models import Ensemble

    example = to_tensor(prepared.x_test[:4])
    ctx.run.log_model(
        Ensemble(nets),
        example,
        checkpoint=checkpoint,
        registered_model=ctx.params.tracking.registered_model,
    )


def log_evaluation(ctx: StageContext, metrics: dict[str, float], checkpoint: Path) -> None:
    """Copy headline metrics to the pipeline's parent run; promote the model if it is as good."""
    ctx.run.log_summary(metrics)
    ctx.run.promote(
        checkpoint, metrics["test_accuracy"], registered_model=ctx.params.tracking.registered_model
    )
