"""What every stage shell shares: arguments, params (as a view of what the stage declares),
runtime set-up, resume checkpoints, the MLflow run, and one-line errors with exit code 2.

A stage module declares READS (its dvc.yaml `params:` list, `${...}` templates included) and
PATHS (its inputs/outputs, defaults matching dvc.yaml). Outputs are written with
`atomic_outputs` (all or nothing); logging after the outputs exist never fails the stage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noisyflow import tracking
from noisyflow.config import flatten, load_params, to_dict
from noisyflow.config.view import ParamsView, resolve_reads
from noisyflow.errors import NoisyflowError
from noisyflow.io import load_checkpoint
from noisyflow.lineage import dvc_hash
from noisyflow.locking import check_stage_may_run
from noisyflow.train.runtime import Runtime
from noisyflow.train.state import Checkpointer
from noisyflow.types import Prepared

if TYPE_CHECKING:
    from noisyflow.models import ModelConfig, Network

PACKAGE = Path(__file__).resolve().parents[1] / "noisyflow"
STATE_DIR = ".noisyflow/state"
CACHE_DIR = ".noisyflow/cache"
LOG_RETRIES = 3


@dataclass
class StageContext:
    name: str
    params: ParamsView
    reads: tuple[str, ...]  # resolved
    run: Any  # tracking.StageRun or tracking.NullRun
    runtime: Runtime
    root: Path
    outputs_written: bool = False
    warnings: list[str] = field(default_factory=list)

    def checkpointer(self, inputs: list[Path]) -> Checkpointer:
        """Resume checkpoints of this stage, valid only for these params, inputs and code."""
        digest = hashlib.sha256()
        tree = to_dict(self.params.params)
        chosen = {k: v for k, v in flatten(tree).items() if _covered(k, self.reads)}
        digest.update(json.dumps(chosen, sort_keys=True, default=str).encode())
        for path in [*inputs, PACKAGE]:
            digest.update(f"{path.name}:{dvc_hash(path)}".encode())
        every = self.params.runtime.checkpoint_every
        ck = Checkpointer(
            self.root / STATE_DIR / f"{self.name}.pt", digest.hexdigest(), every=every
        )
        ck.run_id = getattr(self.run, "run_id", None)
        return ck

    def load_nets(
        self, path: Path, prepared: Prepared
    ) -> tuple[dict[str, Any], ModelConfig, list[Network]]:
        """(checkpoint payload, its network config, the networks) saved at `path` by an earlier
        stage, refused when they were built for other params or data."""
        from noisyflow import recipes  # the networks' code: not needed by `prepare`

        payload = load_checkpoint(path)
        config, nets = recipes.load_nets(
            payload, self.runtime, origin=str(path), expect=self.params, prepared=prepared
        )
        return payload, config, nets

    def resumed(self, epoch: int | None, previous_run: str | None) -> None:
        """Say in the log and on the MLflow run that this run resumed a killed one."""
        if epoch is None:
            return
        print(f"{self.name}: resumed from the checkpoint after epoch {epoch - 1}")
        self.run.note_resumed(epoch, previous_run)

    def log(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call run.<method>; once outputs are written, retry failures and then only warn."""
        fn = getattr(self.run, method)
        if not self.outputs_written:
            return fn(*args, **kwargs)
        for attempt in range(LOG_RETRIES):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # the outputs are on disk: never lose them to logging
                if attempt == LOG_RETRIES - 1:
                    msg = f"warning: MLflow logging ({method}) failed, outputs kept: {exc}"
                    print(msg, file=sys.stderr)
                    self.warnings.append(msg)
                    return None
                time.sleep(0.5 * 2**attempt)
        return None


def _covered(key: str, reads: tuple[str, ...]) -> bool:
    return any(key == r or key.startswith(f"{r}.") for r in reads)


def parser(stage: str, paths: dict[str, str]) -> argparse.ArgumentParser:
    """--params plus one --<name> option per input/output path (defaults match dvc.yaml)."""
    ap = argparse.ArgumentParser(prog=f"python -m stages.{stage}")
    ap.add_argument("--params", default="params.yaml", type=Path)
    for name, default in paths.items():
        ap.add_argument(f"--{name.replace('_', '-')}", dest=name, default=default, type=Path)
    return ap


@contextmanager
def stage(name: str, params_file: Path, reads: tuple[str, ...]) -> Iterator[StageContext]:
    """Load params, set up the runtime, and log into this stage's MLflow child run."""
    check_stage_may_run(tracking.project_root(), name)
    params = load_params(params_file)
    resolved = resolve_reads(reads, params)
    view = ParamsView(params, resolved, name)
    runtime = Runtime.from_params(params.runtime)
    tree = to_dict(params)
    declared = {k: v for k, v in flatten(tree).items() if _covered(k, resolved)}
    with tracking.stage_run(
        name,
        params=params,
        params_file=params_file,
        every=flatten(tree),
    ) as run:
        run.log_params(declared)
        yield StageContext(name, view, resolved, run, runtime, tracking.project_root())


def entrypoint(main: Callable[[list[str] | None], None]) -> Callable[[list[str] | None], None]:
    """Wrap a stage main: noisyflow errors print 'error: ...' to stderr and exit with code 2."""

    def run(argv: list[str] | None = None) -> None:
        try:
            main(argv)
        except NoisyflowError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    return run


def epoch_logger(ctx: StageContext) -> Callable[[int, dict[str, float]], None]:
    """Per-epoch metrics to the stage's MLflow run (step = epoch)."""
    return lambda epoch, stats: ctx.run.log_metrics(stats, step=epoch)
