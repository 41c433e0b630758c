"""MLflow adapter: the only module that imports mlflow.

One pipeline run = one parent MLflow run with one child run per stage that actually ran.
`dvc repro` runs each stage as its own process, so stages find their parent through a *group
key* shared by every process of one pipeline run:

1. `NOISYFLOW_RUN_GROUP` when set (the Prefect flow and `noisyflow run` set it to the flow run);
2. otherwise the nearest ancestor `dvc` process (pid, start time, DVC_EXP_NAME): every stage of one
   `dvc repro` / `dvc exp run` (also --temp and queued) shares it, and no later invocation does;
3. otherwise (a stage run by hand) a fresh key, i.e. a parent with a single child.

The parent is looked up by the tag `noisyflow.group`; each stage re-opens it while it runs and
closes it with the stage's status, so it reads FINISHED after the last stage that ran.

Models: `train` logs the two networks as one `Ensemble` (PyTorch flavour, pt2, no pickle) and
registers it with alias `candidate`; `evaluate` scores that version and moves `champion` to it
when its test accuracy >= the champion's (see docs/mlflow.md).
"""

from __future__ import annotations

import copy
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from noisyflow.errors import TrackingError
from noisyflow.lineage import (  # re-exported: stages and tests use tracking.<name>
    GROUP_ENV as GROUP_ENV,
)
from noisyflow.lineage import (
    dvc_hash,
    git_info,
    group_key,
    params_hash,
)

GROUP_TAG = "noisyflow.group"
STAGE_TAG = "stage"
KIND_TAG = "noisyflow.kind"
CANDIDATE = "candidate"
CHAMPION = "champion"
HOST_TAG = "noisyflow.host"
PID_TAG = "noisyflow.pid"
PID_START_TAG = "noisyflow.pid_start"
CHECKPOINT_TAG = "checkpoint_md5"  # on model versions: md5 of the checkpoint they were built from
HEALTH_TIMEOUT_S = 5.0
ENV_TAGS = {
    "DVC_EXP_NAME": "dvc.exp_name",
    "DVC_EXP_BASELINE_REV": "dvc.exp_baseline_rev",
    "PREFECT_FLOW_RUN_ID": "prefect.flow_run_id",
}


def project_root() -> Path:
    """The DVC workspace: DVC_ROOT under dvc (also for --temp experiments), else the cwd."""
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def tracking_uri(root: Path | None = None) -> str:
    """MLFLOW_TRACKING_URI if set, else an absolute sqlite:///<root>/mlflow.db.

    Absolute, so `dvc exp run --temp` (which runs in .dvc/tmp/...) logs to the real store.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(root or project_root()) / 'mlflow.db'}"


def check_reachable(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Fail fast (within `timeout`) when an HTTP tracking server is down or refuses."""
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (user's own URI)
            if resp.status != 200:
                raise TrackingError(
                    f"MLflow tracking server {uri} answered {resp.status} on /health"
                )
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise TrackingError(
            f"MLflow tracking server {uri} is not reachable ({exc}); start it or unset "
            "MLFLOW_TRACKING_URI to use the local store"
        ) from exc


class StageRun:
    """Handle a stage uses to log into its child run."""

    def __init__(self, mlflow_module: Any, run_id: str, parent_id: str) -> None:
        self._mlflow = mlflow_module
        self.run_id = run_id
        self.parent_id = parent_id

    def log_params(self, flat: dict[str, Any]) -> None:
        self._mlflow.log_params({k: _param_value(v) for k, v in flat.items()}, synchronous=True)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        clean = {k: float(v) for k, v in metrics.items() if _is_number(v)}
        if clean:
            self._mlflow.log_metrics(clean, step=step)

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_outputs(
        self, paths: list[Path], max_mb: float = 50.0, hash_only: Sequence[Path] = ()
    ) -> None:
        """Tag each output with its DVC hash; upload those under `max_mb` as artifacts, except
        the `hash_only` ones (logged elsewhere under their own artifact path).

        Names are relative to the stage's workspace (the cwd, which `dvc exp run --temp` moves
        to .dvc/tmp/exps/...), so they match the paths in dvc.yaml and dvc.lock.
        """
        workspace = Path.cwd().resolve()
        skip = {Path(p) for p in hash_only}
        for path in paths:
            name = _relative(path, workspace)
            self.set_tags({f"dvc.outs.{name}": dvc_hash(path)})
            if Path(path) in skip:
                continue
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            for f in files:
                if f.stat().st_size <= max_mb * 2**20:
                    sub = (
                        Path(name).parent
                        if path.is_file()
                        else Path(name) / f.parent.relative_to(path)
                    )
                    self.log_artifact(f, artifact_path=f"outputs/{sub.as_posix()}".rstrip("/."))

    def log_dataset(
        self,
        features: Any,
        targets: Any,
        *,
        name: str,
        source: str,
        digest: str,
        context: str,
        tags: dict[str, Any],
    ) -> None:
        """Log an input data set (MLflow dataset) with an explicit content digest.

        `source` is a local path, recorded as an absolute file:// URI.
        """
        import mlflow.data
        from mlflow.data.dataset_source_registry import resolve_dataset_source

        uri = Path(source).resolve().as_uri()
        with warnings.catch_warnings():
            # MLflow registers the local source class twice ("" and "file" schemes), identical
            # classes, so resolving a local URI always reports an ambiguity; resolve it once here.
            warnings.filterwarnings("ignore", message=".*interpreted in multiple ways")
            resolved = resolve_dataset_source(uri)
        dataset = mlflow.data.from_numpy(
            features, targets=targets, source=resolved, name=name, digest=digest
        )
        self._mlflow.log_input(dataset, context=context, tags={k: str(v) for k, v in tags.items()})

    def log_model(
        self,
        model: Any,
        input_example: Any,
        *,
        checkpoint: str | Path,
        registered_model: str,
        metadata: dict[str, Any] | None = None,
    ) -> str | None:
        """Log `model` with the PyTorch flavour; register it as the `candidate` version.

        Saved as pt2 (torch.export: no pickle, loads without noisyflow installed); the signature
        comes from `input_example`, a (B, C, H, W) float tensor. The version is tagged with the
        md5 of `checkpoint` so `promote` can find the version built from the weights it scored.

        Returns:
            The registered version, or None when `registered_model` is empty (log only).
        """
        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        model = copy.deepcopy(model).cpu().eval()
        example = input_example.detach().cpu()
        with torch.no_grad():
            output = model(example)
        info = mlflow.pytorch.log_model(
            model,
            name="model",
            input_example=example.numpy(),
            signature=infer_signature(example.numpy(), output.numpy()),
            # explicit requirements: inferring them runs a subprocess (~13 s)
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            serialization_format="pt2",
            registered_model_name=registered_model or None,
            metadata=metadata,
        )
        if not registered_model:
            return None
        version = str(info.registered_model_version)
        client = self._mlflow.MlflowClient()
        client.set_model_version_tag(
            registered_model, version, CHECKPOINT_TAG, dvc_hash(checkpoint)
        )
        client.set_registered_model_alias(registered_model, CANDIDATE, version)
        self.set_tags({"model.name": registered_model, "model.version": version})
        return version

    def promote(
        self,
        checkpoint: str | Path,
        metrics: dict[str, float],
        *,
        registered_model: str,
        data_key: str,
    ) -> bool:
        """Move `champion-<data_key>` (and `champion`) to the version built from `checkpoint`
        if it is at least as good as that data set's champion.

        Versions are only compared with versions trained on the same prepared data (same
        source, split and noise: `data_key` is its content hash), by `selection_metric`: the
        noisy validation accuracy when the pipeline holds out a validation split
        (`data.val_size`), else test accuracy (see docs/mlflow.md for why that is a fallback).
        `champion` always points at the champion of the data set evaluated last.
        Returns whether it was promoted; False when no version matches the checkpoint.
        """
        if not registered_model:
            return False
        metric = "val_accuracy" if "val_accuracy" in metrics else "test_accuracy"
        score = float(metrics[metric])
        client = self._mlflow.MlflowClient()
        found = client.search_model_versions(
            f"name = '{registered_model}' and tags.{CHECKPOINT_TAG} = '{dvc_hash(checkpoint)}'",
            order_by=["version_number DESC"],
            max_results=1,
        )
        if not found:
            self.set_tags({"model.promoted": "false", "model.note": "no registered version"})
            return False
        version = str(found[0].version)  # an int from sqlite, a str over REST
        for key, value in (
            ("selection_metric", metric),
            ("selection_score", score),
            ("test_accuracy", metrics.get("test_accuracy")),
            ("data_key", data_key),
        ):
            client.set_model_version_tag(registered_model, version, key, value)
        alias = f"{CHAMPION}-{data_key}"
        try:
            champion = client.get_model_version_by_alias(registered_model, alias)
            same_metric = champion.tags.get("selection_metric") == metric
            best = float(champion.tags.get("selection_score", "-inf")) if same_metric else -1.0
        except self._mlflow.MlflowException:  # no champion for this data set yet
            best = float("-inf")
        promoted = score >= best
        if promoted:
            client.set_registered_model_alias(registered_model, alias, version)
        current = client.get_model_version_by_alias(registered_model, alias)
        client.set_registered_model_alias(registered_model, CHAMPION, str(current.version))
        tags = {"model.name": registered_model, "model.version": version, "model.alias": alias}
        self.set_tags({**tags, "model.promoted": str(promoted).lower()})
        client.set_tag(self.parent_id, "model.version", version)
        return promoted

    def note_resumed(self, epoch: int, previous_run: str | None) -> None:
        """Tag this run as resuming a killed one from its checkpoint after `epoch - 1`."""
        tags = {"noisyflow.resumed_at_epoch": epoch}
        if previous_run:
            tags["noisyflow.resumed_from_run"] = previous_run
        self.set_tags(tags)

    def log_summary(self, metrics: dict[str, float]) -> None:
        """Copy headline metrics to the parent run, so searching parents is enough to compare."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items() if _is_number(v)]
        self._mlflow.MlflowClient().log_batch(self.parent_id, metrics=batch)


class NullRun:
    """The run handle when tracking is off (`tracking.enabled: false`): logs nothing."""

    run_id = None
    parent_id = None

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


@contextmanager
def stage_run(
    stage: str, *, params: Any, params_file: Path, every: dict[str, Any]
) -> Iterator[StageRun | NullRun]:
    """Open the stage's child run under the pipeline's parent; close both with the outcome.

    Child runs of this stage whose process died (SIGKILL, OOM, power) are marked KILLED first.
    Raises TrackingError quickly (naming the URI) when the store cannot be reached.
    """
    if not params.tracking.enabled:
        yield NullRun()
        return
    experiment = params.tracking.experiment
    root = project_root()  # the real workspace, also under `dvc exp run --temp`
    uri = tracking_uri(root)
    check_reachable(uri)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    import mlflow

    mlflow.set_tracking_uri(uri)
    try:
        client = mlflow.MlflowClient()
        exp_id = experiment_id(client, experiment, artifact_location(uri, root, experiment))
        reap_dead_runs(client, exp_id, stage)
        key = group_key()
        tags = _common_tags(stage, Path.cwd(), params_file, key)
        parent_id = _open_parent(client, exp_id, key, tags, every)
    except Exception as exc:
        raise tracking_error(uri, exc) from exc
    status = "FAILED"
    try:
        with mlflow.start_run(
            experiment_id=exp_id, run_name=stage, parent_run_id=parent_id, tags=tags
        ) as run:
            handle = StageRun(mlflow, run.info.run_id, parent_id)
            try:
                yield handle
            except BaseException:
                mlflow.end_run(status="FAILED")
                raise
            status = "FINISHED"
    finally:
        try:
            client.set_terminated(parent_id, status=status)
        except Exception as exc:  # the stage's outcome stands; the parent's status is cosmetic
            print(f"warning: could not close MLflow parent run {parent_id}: {exc}", file=sys.stderr)


_TRANSIENT = (
    "database is locked",
    "TEMPORARILY_UNAVAILABLE",
    "Connection refused",
    "Connection reset",
    "timed out",
    "Max retries exceeded",
    "503",
    "502",
    "504",
)


def tracking_error(uri: str, exc: BaseException) -> TrackingError:
    """A one-line TrackingError saying whether the failure may pass (the flow retries those)
    or is permanent (bad URI, permissions, a refused request: never retried)."""
    text = " ".join(str(exc).split())[:300]
    if isinstance(exc, (ConnectionError, TimeoutError)) or any(t in text for t in _TRANSIENT):
        return TrackingError(f"MLflow tracking store {uri} is temporarily unavailable: {text}")
    return TrackingError(f"MLflow tracking store {uri} refused the request: {text}")


def reap_dead_runs(client: Any, exp_id: str, stage: str) -> list[str]:
    """Mark KILLED the RUNNING runs of `stage` started on this host by a process that is gone.

    Each stage run records its host, pid and process start time; a pid that no longer exists,
    or now belongs to a younger process, means the stage was killed without closing its run.
    """
    import psutil

    host = socket.gethostname()
    found = client.search_runs(
        [exp_id],
        filter_string=(
            f"tags.`{STAGE_TAG}` = '{stage}' and tags.`{HOST_TAG}` = '{host}' "
            "and attributes.status = 'RUNNING'"
        ),
        max_results=100,
    )
    reaped = []
    for run in found:
        tags = run.data.tags
        pid, started = int(tags.get(PID_TAG, "-1")), float(tags.get(PID_START_TAG, "0"))
        try:
            alive = pid > 0 and abs(psutil.Process(pid).create_time() - started) < 1.0
        except psutil.Error:
            alive = False
        if not alive:
            client.set_terminated(run.info.run_id, status="KILLED")
            client.set_tag(run.info.run_id, "noisyflow.killed", "process gone")
            reaped.append(run.info.run_id)
            parent = tags.get("mlflow.parentRunId")
            if parent and client.get_run(parent).info.status == "RUNNING":
                client.set_terminated(parent, status="KILLED")
    return reaped


def artifact_location(uri: str, root: Path, experiment: str) -> str | None:
    """<root>/mlruns/<experiment> for a local store; None (the server decides) otherwise.

    MLflow's default is ./mlruns under the *current* directory, which for `dvc exp run --temp`
    is a temporary copy that DVC deletes afterwards, taking the artifacts with it.
    """
    return (
        None if uri.startswith(("http://", "https://")) else (root / "mlruns" / experiment).as_uri()
    )


def experiment_id(client: Any, name: str, artifact_location: str | None) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # created concurrently by another stage process
        return client.get_experiment_by_name(name).experiment_id


def _common_tags(stage: str, root: Path, params_file: Path, key: str) -> dict[str, str]:
    import psutil

    tags = {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(os.getpid()),
        PID_START_TAG: repr(psutil.Process().create_time()),
        STAGE_TAG: stage,
        "dvc.stage": stage,
        GROUP_TAG: key,
        "params_hash": params_hash(params_file),
    }
    tags.update(git_info(root))
    for env, tag in ENV_TAGS.items():
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    return tags


def _open_parent(
    client: Any, exp_id: str, key: str, tags: dict[str, str], params: dict[str, Any]
) -> str:
    found = client.search_runs(  # the parent only: the stage runs carry the group tag too
        [exp_id],
        filter_string=f"tags.`{GROUP_TAG}` = '{key}' and tags.`{KIND_TAG}` = 'pipeline'",
        max_results=1,
    )
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        return run_id
    parent_tags = {k: v for k, v in tags.items() if k not in (STAGE_TAG, "dvc.stage")}
    parent_tags[KIND_TAG] = "pipeline"
    name = os.environ.get("DVC_EXP_NAME") or time.strftime("pipeline-%Y%m%d-%H%M%S")
    run = client.create_run(exp_id, run_name=name, tags=parent_tags)
    from mlflow.entities import Param

    client.log_batch(run.info.run_id, params=[Param(k, _param_value(v)) for k, v in params.items()])
    return run.info.run_id


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
    return text[:6000]


def _is_number(value: Any) -> bool:
    try:
        return value == value and abs(float(value)) != float("inf")  # drop NaN / inf
    except (TypeError, ValueError):
        return False


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return Path(path).name


def find_group_run(key: str, *, experiment: str, root: Path | None = None) -> dict[str, Any] | None:
    """The pipeline's parent run for group `key` (tag `noisyflow.group`), or None if none ran.

    Returns:
        {"run_id", "experiment_id", "status", "tags", "tracking_uri", "url"}; `url` is the
        MLflow UI page when the store is an HTTP server, else a `runs:/<id>` URI.
    """
    uri = tracking_uri(root)
    check_reachable(uri)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    found = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{GROUP_TAG}` = '{key}' and tags.`noisyflow.kind` = 'pipeline'",
        max_results=1,
    )
    if not found:
        return None
    run = found[0]
    run_id = run.info.run_id
    url = f"runs:/{run_id}"
    if uri.startswith(("http://", "https://")):
        url = f"{uri.rstrip('/')}/#/experiments/{exp.experiment_id}/runs/{run_id}"
    return {
        "run_id": run_id,
        "experiment_id": exp.experiment_id,
        "status": run.info.status,
        "tags": dict(run.data.tags),
        "tracking_uri": uri,
        "url": url,
    }


def pipeline_runs(experiment: str, last: int = 10) -> list[dict[str, Any]]:
    """The newest `last` pipeline (parent) runs of `experiment`, newest first.

    Returns:
        One dict per run: run_id, name, status, start_ms, end_ms (None while running), and the
        run's params (flattened params.yaml), metrics (evaluate's, copied up) and tags.
    Raises TrackingError when the store is unreachable or has no such experiment.
    """
    uri = tracking_uri()
    check_reachable(uri)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise TrackingError(f"MLflow store {uri} has no experiment {experiment!r}")
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{KIND_TAG}` = 'pipeline'",
        order_by=["attributes.start_time DESC"],
        max_results=last,
    )
    return [
        {
            "run_id": r.info.run_id,
            "name": r.info.run_name,
            "status": r.info.status,
            "start_ms": r.info.start_time,
            "end_ms": r.info.end_time,
            "params": dict(r.data.params),
            "metrics": dict(r.data.metrics),
            "tags": dict(r.data.tags),
        }
        for r in runs
    ]
