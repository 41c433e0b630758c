"""MLflow adapter: the only module that imports mlflow.

One pipeline run = one parent MLflow run with one child run per stage that actually ran.
`dvc repro` runs each stage as its own process, so stages find their parent through a *group
key* shared by every process of one pipeline run:

1. `NOISYFLOW_RUN_GROUP` when set (the Prefect flow and `noisyflow run` set it to the flow run);
2. otherwise the nearest ancestor `dvc` process (pid + start time): every stage started by one
   `dvc repro` / `dvc exp run` shares it, and a later invocation never does;
3. otherwise (a stage run by hand) a fresh key, i.e. a parent with a single child.

The parent is looked up by the tag `noisyflow.group`; each stage re-opens it while it runs and
closes it with the stage's status, so it reads FINISHED after the last stage that ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from noisyflow.errors import TrackingError

GROUP_ENV = "NOISYFLOW_RUN_GROUP"
GROUP_TAG = "noisyflow.group"
STAGE_TAG = "stage"
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


def group_key() -> str:
    """The key shared by all stage processes of one pipeline run (see module docstring)."""
    if os.environ.get(GROUP_ENV):
        return os.environ[GROUP_ENV]
    try:
        import psutil

        for proc in psutil.Process().parents():
            cmd = proc.cmdline()
            if any(Path(part).name == "dvc" for part in cmd[:2]) or (
                len(cmd) > 2 and cmd[1:3] == ["-m", "dvc"]
            ):
                return f"dvc-{socket.gethostname()}-{proc.pid}-{int(proc.create_time() * 1000)}"
    except Exception:  # psutil missing or a process vanished: fall through to a fresh key
        pass
    return f"solo-{uuid.uuid4().hex[:12]}"


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dvc_hash(path: str | Path) -> str:
    """md5 as DVC 3 records it in dvc.lock: plain md5 for files, '<md5>.dir' for directories."""
    path = Path(path)
    if path.is_file():
        return file_md5(path)
    entries = sorted(
        (
            {"md5": file_md5(p), "relpath": p.relative_to(path).as_posix()}
            for p in path.rglob("*")
            if p.is_file()
        ),
        key=lambda e: e["relpath"],
    )
    listing = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(listing).hexdigest() + ".dir"


def git_info(root: Path) -> dict[str, str]:
    """Commit and dirty flag of the work tree (empty when not a git checkout)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (subprocess.SubprocessError, OSError):
        return {}
    return {"git_commit": commit, "git_dirty": str(dirty).lower()}


def params_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else ""


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

    def log_outputs(self, paths: list[Path], max_mb: float = 50.0) -> None:
        """Tag each output with its DVC hash; upload those under `max_mb` as artifacts."""
        root = project_root()
        for path in paths:
            name = _relative(path, root)
            self.set_tags({f"dvc.outs.{name}": dvc_hash(path)})
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
        """Log an input data set (MLflow dataset) with an explicit content digest."""
        import mlflow.data

        dataset = mlflow.data.from_numpy(
            features, targets=targets, source=source, name=name, digest=digest
        )
        self._mlflow.log_input(dataset, context=context, tags={k: str(v) for k, v in tags.items()})


@contextmanager
def stage_run(
    stage: str, *, experiment: str, params_file: Path, params: dict[str, Any]
) -> Iterator[StageRun]:
    """Open the stage's child run under the pipeline's parent; close both with the outcome.

    Raises TrackingError quickly (naming the URI) when the store cannot be reached.
    """
    root = project_root()
    uri = tracking_uri(root)
    check_reachable(uri)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    import mlflow

    mlflow.set_tracking_uri(uri)
    try:
        client = mlflow.MlflowClient()
        exp_id = _experiment_id(client, experiment)
        key = group_key()
        tags = _common_tags(stage, root, params_file, key)
        parent_id = _open_parent(client, exp_id, key, tags, params)
    except Exception as exc:
        raise TrackingError(f"MLflow tracking store {uri} refused the request: {exc}") from exc
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
        client.set_terminated(parent_id, status=status)


def _experiment_id(client: Any, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # created concurrently by another stage process
        return client.get_experiment_by_name(name).experiment_id


def _common_tags(stage: str, root: Path, params_file: Path, key: str) -> dict[str, str]:
    tags = {
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
    found = client.search_runs(
        [exp_id], filter_string=f"tags.`{GROUP_TAG}` = '{key}'", max_results=1
    )
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        return run_id
    parent_tags = {k: v for k, v in tags.items() if k not in (STAGE_TAG, "dvc.stage")}
    parent_tags["noisyflow.kind"] = "pipeline"
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
