"""`noisyflow search`: an Optuna study over the method toolbox, tracked in MLflow, resumable,
parallel with a Prefect flow of worker processes (docs/search.md).

    noisyflow search --trials 40                        # params.yaml + params/search_space.yaml
    noisyflow search --trials 40 --workers 4 --timeout 7200
    noisyflow search --trials 40 --storage postgresql://user@db/optuna --study team-cifar
    noisyflow search --apply                            # best trial's values into params.yaml

One *study* lives in the storage (SQLite file by default, any SQLAlchemy URL, or a journal file
path); it is keyed by name, by default `noisyflow-<fingerprint>` of params + space, so a rerun
with the same settings resumes it and changed settings start a new one. `--trials N` is the
study's target: every invocation runs trials until N of them have finished (complete, pruned
or failed by an error), so a search killed by SIGKILL continues where it stopped. A trial that
was running when its process died is marked failed (`noisyflow.killed`), does not count, and
its parameters are tried once more.

Workers (`--workers N`; on several machines, one invocation each with the same `--storage` and
`--study`) take trials from the study until the target is reached. Each trial runs in its own
folder `<workdir>/<study>/trials/<number>/` (its params.yaml and result.json) in the worker's
process; workers on one machine take trials under a file lock, so the target is never
overshot there.

MLflow: one parent run per study (tag `noisyflow.kind=search`), one child run per trial
(params = the trial's overrides, `val_accuracy` per training epoch, `objective`, the truth when
known, tag `noisyflow.trial_state` = complete | pruned | failed | killed).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gc
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from noisyflow.config import load_params, parse_assignments, to_dict
from noisyflow.errors import NoisyflowError, ParamsError, TrackingError
from noisyflow.search import objective as obj
from noisyflow.search.rank import rank_correlation
from noisyflow.search.space import Sampler, load_space, overrides_yaml

DEFAULT_SPACE = "params/search_space.yaml"
DEFAULT_WORKDIR = ".noisyflow/search"
CACHE_DIR = ".noisyflow/cache"  # the decode cache the prepare stage uses too
FLOW_NAME = "noisyflow-search"

# trial user attributes (Optuna); the overrides are what `--apply` and the MLflow run use
A_OVERRIDES = "noisyflow.overrides"
A_HOST, A_PID, A_PID_START = "noisyflow.host", "noisyflow.pid", "noisyflow.pid_start"
A_WORKER = "noisyflow.worker"
A_HEARTBEAT = "noisyflow.heartbeat"
A_ERROR = "noisyflow.error"  # failed by an error inside the trial: counts towards the target
A_KILLED = "noisyflow.killed"  # its process died or was interrupted: does not count
A_RETRY_OF = "noisyflow.retry_of"
A_RUN_ID = "noisyflow.mlflow_run_id"
A_SECONDS = "noisyflow.seconds"
# study user attributes
S_FINGERPRINT = "noisyflow.fingerprint"
S_SPACE = "noisyflow.space"
S_FIXED = "noisyflow.fixed"
S_PARENT = "noisyflow.mlflow_parent"

KIND_SEARCH, KIND_TRIAL = "search", "search-trial"
PARENT_ENV = "NOISYFLOW_SEARCH_PARENT_PID"  # set for worker processes
MAX_SAME_FAILURES = 3  # a worker stops after this many trials in a row fail with one error


# ----------------------------------------------------------------------------- config


@dataclass
class SearchConfig:
    """Everything a worker needs (written as JSON for worker processes); paths absolute."""

    root: str
    params_path: str
    space_path: str
    overrides: dict[str, Any]  # -S on the command line: fixed, after the space's fixed:
    study: str
    storage: str
    trials: int
    workdir: str
    prepared_dir: str = ""
    deadline: float | None = None  # time.time() after which no trial starts
    pruner: str = "median"
    truth: str = "auto"
    sampler_seed: int | None = None
    startup_trials: int | None = None
    tracking_uri: str | None = None  # None: tracking off
    experiment: str = "noisyflow"
    parent_run_id: str | None = None
    heartbeat_s: float = field(
        default_factory=lambda: float(os.environ.get("NOISYFLOW_SEARCH_HEARTBEAT_S", 60))
    )
    grace_s: float = field(
        default_factory=lambda: float(os.environ.get("NOISYFLOW_SEARCH_GRACE_S", 600))
    )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> SearchConfig:
        return cls(**json.loads(Path(path).read_text()))

    @property
    def study_dir(self) -> Path:
        return Path(self.workdir) / _safe_name(self.study)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "study"


def build_sampler(cfg: SearchConfig) -> Sampler:
    """Params file + space file + -S overrides, checked; the trial sampler."""
    params = load_params(cfg.params_path)
    space = load_space(cfg.space_path)
    return space.check(params, cfg.overrides)


# ----------------------------------------------------------------------------- storage


def default_storage(workdir: Path) -> str:
    return f"sqlite:///{(workdir / 'search.db').resolve()}"


def open_storage(url: str) -> Any:
    """An Optuna storage: an SQLAlchemy URL (sqlite:///, postgresql://, mysql://) or, for any
    value without '://', a journal file (JournalFileBackend: no database, works over NFS)."""
    import optuna

    if "://" not in url:
        from optuna.storages.journal import JournalFileBackend

        path = Path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        db = sqlite_path(url)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        return optuna.storages.RDBStorage(url, **kwargs)
    except Exception as exc:  # bad URL, driver missing, server down
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParamsError(f"--storage {redact(url)}: cannot open ({first})") from None


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    rest = url[len("sqlite:///") :].split("?")[0]
    return None if rest in ("", ":memory:") else Path(rest)


def redact(url: str) -> str:
    """The URL without a password (what tags and messages show)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def claim_path(cfg: SearchConfig) -> Path:
    """The file lock that serialises taking trials on this machine."""
    db = sqlite_path(cfg.storage)
    if db is not None:
        return db.with_name(db.name + ".claim")
    if "://" not in cfg.storage:
        return Path(cfg.storage + ".claim")
    return cfg.study_dir / "claim.lock"


@contextlib.contextmanager
def flock(path: Path) -> Iterator[None]:
    """An exclusive fcntl lock on `path` (released by the kernel if the holder dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def make_sampler(cfg: SearchConfig, index: int, n_existing: int) -> Any:
    import optuna

    seed = None
    if cfg.sampler_seed is not None:  # distinct per worker and per resumption
        seed = cfg.sampler_seed + 1000 * index + n_existing
    startup = cfg.startup_trials or max(3, min(10, cfg.trials // 3))
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=startup, multivariate=True, group=True, constant_liar=True
    )


def make_pruner(cfg: SearchConfig, sampler: Sampler) -> Any:
    import optuna

    if cfg.pruner == "none":
        return optuna.pruners.NopPruner()
    if cfg.pruner == "hyperband":
        epochs = sampler.base.train.epochs
        for dim in sampler.space.dims:
            if dim.key == "train.epochs":
                epochs = int(dim.high)
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 2))
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def load_study(cfg: SearchConfig, sampler: Sampler, *, index: int = 0) -> Any:
    import optuna

    _quiet_optuna()
    storage = open_storage(cfg.storage)
    study = optuna.load_study(study_name=cfg.study, storage=storage)
    n = len(study.get_trials(deepcopy=False))
    return optuna.load_study(
        study_name=cfg.study,
        storage=storage,
        sampler=make_sampler(cfg, index, n),
        pruner=make_pruner(cfg, sampler),
    )


def create_or_check_study(cfg: SearchConfig, sampler: Sampler) -> tuple[Any, bool]:
    """Create the study (maximise) or check that an existing one has this fingerprint.
    Returns (study, created)."""
    import optuna

    _quiet_optuna()
    storage = open_storage(cfg.storage)
    names = {
        s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    }
    created = cfg.study not in names
    study = optuna.create_study(
        study_name=cfg.study, storage=storage, direction="maximize", load_if_exists=True
    )
    fp = sampler.fingerprint()
    have = study.user_attrs.get(S_FINGERPRINT)
    if have is None:
        study.set_user_attr(S_FINGERPRINT, fp)
        study.set_user_attr(S_SPACE, sampler.space.as_dict())
        study.set_user_attr(S_FIXED, sampler.space.fixed)
        study.set_user_attr("noisyflow.objective", obj.OBJECTIVE_DESCRIPTION)
    elif have != fp:
        raise ParamsError(
            f"study {cfg.study!r} in {redact(cfg.storage)} was run with other params or another "
            "search space; use another --study name (or leave --study out: the default name "
            "follows the settings)"
        )
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ParamsError(f"study {cfg.study!r} is not a maximisation study (not noisyflow's)")
    return study, created


# ----------------------------------------------------------------------------- trial states


def trial_kind(t: Any) -> str:
    """complete | pruned | failed (an error: counts) | killed (process died) | running | waiting."""
    state = t.state.name
    if state == "COMPLETE":
        return "complete"
    if state == "PRUNED":
        return "pruned"
    if state == "FAIL":
        return "failed" if A_ERROR in t.user_attrs else "killed"
    return state.lower()


COUNTED = ("complete", "pruned", "failed")


def count_kinds(trials: list[Any]) -> dict[str, int]:
    out = {k: 0 for k in ("complete", "pruned", "failed", "killed", "running", "waiting")}
    for t in trials:
        kind = trial_kind(t)
        out[kind] = out.get(kind, 0) + 1
    return out


def _alive(pid: int, started: float) -> bool:
    import psutil

    try:
        return pid > 0 and abs(psutil.Process(pid).create_time() - started) < 1.0
    except psutil.Error:
        return False


def _process_tags() -> dict[str, Any]:
    import psutil

    return {
        A_HOST: socket.gethostname(),
        A_PID: os.getpid(),
        A_PID_START: psutil.Process().create_time(),
    }


def reap_stale(study: Any, cfg: SearchConfig, tracker: Any) -> list[int]:
    """Mark failed (killed) the RUNNING trials whose process is gone: on this host, a pid that
    no longer runs; elsewhere, a heartbeat older than cfg.grace_s. Each is retried once."""
    import optuna
    from optuna.trial import TrialState

    host, now, reaped = socket.gethostname(), time.time(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = t.user_attrs
        if attrs.get(A_HOST) == host:
            dead = not _alive(int(attrs.get(A_PID, -1)), float(attrs.get(A_PID_START, 0)))
        else:
            beat = attrs.get(A_HEARTBEAT)
            if beat is None and t.datetime_start is not None:
                beat = t.datetime_start.timestamp()
            dead = beat is not None and now - float(beat) > cfg.grace_s
        if not dead:
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, A_KILLED, "process gone")
            study.tell(t.number, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, ValueError):
            continue  # it finished meanwhile
        tracker.kill_trial(attrs.get(A_RUN_ID))
        if A_RETRY_OF not in attrs and t.params:
            study.enqueue_trial(dict(t.params), user_attrs={A_RETRY_OF: t.number})
        reaped.append(t.number)
    return reaped


class Heartbeat:
    """Writes the trial's heartbeat attribute every `every` seconds from a thread."""

    def __init__(self, study: Any, trial_id: int, every: float) -> None:
        self._storage, self._id, self._every = study._storage, trial_id, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="search-heartbeat")

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            with contextlib.suppress(Exception):  # the trial may have just finished
                self._storage.set_trial_user_attr(self._id, A_HEARTBEAT, time.time())

    def __enter__(self) -> Heartbeat:
        self._storage.set_trial_user_attr(self._id, A_HEARTBEAT, time.time())
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


# ----------------------------------------------------------------------------- MLflow


class NullTracker:
    """Tracking off: logs nothing."""

    parent_id = None

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class Tracker:
    """MLflow parent (the study) and child runs (trials), through MlflowClient with explicit
    run ids (no global active run: safe with threads and processes). After the parent is open,
    a failed MLflow call is a warning: the Optuna storage is the search's record."""

    def __init__(self, uri: str, experiment: str, root: Path, parent_id: str | None = None):
        from noisyflow import tracking

        tracking.check_reachable(uri)
        import mlflow

        self.uri, self.root = uri, root
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        try:
            self.exp_id = tracking.experiment_id(
                self.client, experiment, tracking.artifact_location(uri, root, experiment)
            )
        except Exception as exc:
            raise TrackingError(f"MLflow tracking store {uri} refused the request: {exc}") from exc
        self.parent_id = parent_id
        self._warned: set[str] = set()

    def _safe(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if what not in self._warned:
                self._warned.add(what)
                print(f"warning: MLflow {what} failed: {exc}", file=sys.stderr, flush=True)
            return None

    def open_parent(self, study: Any, cfg: SearchConfig, sampler: Sampler) -> str:
        """The study's parent run: reopened when the study has one in this store."""
        from mlflow.entities import Param

        from noisyflow import tracking
        from noisyflow.lineage import git_info

        saved = study.user_attrs.get(S_PARENT) or {}
        if saved.get("uri") == self.uri:
            try:
                run = self.client.get_run(saved["run_id"])
                if run.info.lifecycle_stage == "active":
                    self.client.update_run(run.info.run_id, status="RUNNING")
                    self.parent_id = run.info.run_id
                    return self.parent_id
            except Exception:
                pass  # deleted or another store: a new parent
        tags = {
            tracking.KIND_TAG: KIND_SEARCH,
            "noisyflow.study": cfg.study,
            "optuna.storage": redact(cfg.storage),
            "noisyflow.space_file": cfg.space_path,
            "noisyflow.fingerprint": sampler.fingerprint(),
            "noisyflow.objective": obj.OBJECTIVE_DESCRIPTION,
            tracking.HOST_TAG: socket.gethostname(),
            **git_info(Path(cfg.root)),
        }
        try:
            run = self.client.create_run(self.exp_id, run_name=cfg.study, tags=tags)
            params = [Param(f"fixed.{k}", _text(v)) for k, v in sampler.space.fixed.items()]
            params += [Param(f"space.{d.key}", _text(d.as_dict())) for d in sampler.space.dims]
            self.client.log_batch(run.info.run_id, params=params)
            self.client.log_dict(run.info.run_id, sampler.space.as_dict(), "search_space.json")
        except Exception as exc:
            raise TrackingError(
                f"MLflow tracking store {self.uri} refused the request: {exc}"
            ) from exc
        self.parent_id = run.info.run_id
        study.set_user_attr(S_PARENT, {"uri": self.uri, "run_id": self.parent_id})
        return self.parent_id

    def start_trial(self, study_name: str, number: int, overrides: dict[str, Any], worker: str):
        from mlflow.entities import Param

        from noisyflow import tracking

        tags = {
            "mlflow.parentRunId": self.parent_id,
            tracking.KIND_TAG: KIND_TRIAL,
            "noisyflow.study": study_name,
            "optuna.trial_number": str(number),
            "noisyflow.trial_state": "running",
            "noisyflow.worker": worker,
            tracking.HOST_TAG: socket.gethostname(),
        }
        run = self._safe(
            "trial run", self.client.create_run, self.exp_id, run_name=f"trial-{number}", tags=tags
        )
        if run is None:
            return None
        params = [Param("trial_number", str(number))]
        params += [Param(k, _text(v)) for k, v in overrides.items()]
        self._safe("trial params", self.client.log_batch, run.info.run_id, params=params)
        return run.info.run_id

    def log_metrics(self, run_id: str | None, metrics: dict[str, float], step: int = 0) -> None:
        if run_id is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if _finite(v)]
        if batch:
            self._safe("metrics", self.client.log_batch, run_id, metrics=batch)

    def end_trial(
        self, run_id: str | None, kind: str, metrics: dict[str, float], tags: dict[str, str]
    ) -> None:
        if run_id is None:
            return
        self.log_metrics(run_id, metrics)
        all_tags = {"noisyflow.trial_state": kind, **tags}
        for key, value in all_tags.items():
            self._safe("tags", self.client.set_tag, run_id, key, str(value)[:5000])
        status = {"complete": "FINISHED", "pruned": "FINISHED", "killed": "KILLED"}.get(
            kind, "FAILED"
        )
        self._safe("end of trial run", self.client.set_terminated, run_id, status=status)

    def kill_trial(self, run_id: str | None) -> None:
        if run_id is None:
            return
        self._safe("tags", self.client.set_tag, run_id, "noisyflow.trial_state", "killed")
        self._safe("killed run", self.client.set_terminated, run_id, status="KILLED")

    def close_parent(self, summary: Summary, files: list[Path], ok: bool) -> None:
        if self.parent_id is None:
            return
        metrics = {f"trials_{k}": float(summary.counts[k]) for k in (*COUNTED, "killed")}
        best = summary.best
        if best is not None:
            metrics["best_objective"] = float(best.value)
            for k, v in best.user_attrs.items():
                if k in obj.TRUTH_KEYS and _finite(v):
                    metrics[f"best_{k}"] = float(v)
            tags = {"best.trial": str(best.number)}
            tags.update({f"best.{k}": _text(v) for k, v in summary.best_overrides.items()})
            for key, value in tags.items():
                self._safe("tags", self.client.set_tag, self.parent_id, key, value)
        if summary.correlation:
            metrics.update({f"rank_{k}": v for k, v in summary.correlation.items()})
        self.log_metrics(self.parent_id, metrics)
        for path in files:
            self._safe("artifacts", self.client.log_artifact, self.parent_id, str(path))
        self._safe(
            "end of parent run",
            self.client.set_terminated,
            self.parent_id,
            status="FINISHED" if ok else "FAILED",
        )


def make_tracker(cfg: SearchConfig) -> Tracker | NullTracker:
    if not cfg.tracking_uri:
        return NullTracker()
    return Tracker(cfg.tracking_uri, cfg.experiment, Path(cfg.root), cfg.parent_run_id)


def _text(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
    return text[:6000]


def _finite(value: Any) -> bool:
    try:
        return value == value and abs(float(value)) != float("inf")
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------- data


def prepare_data(cfg: SearchConfig, sampler: Sampler) -> Path:
    """Prepare the data once for all trials (under a lock: workers of one machine share it).

    Every invocation prepares again (cheap: decoded images are cached), so a study never runs
    on a stale copy of changed source files."""
    from noisyflow.data.prepare import prepare_dataset

    base = sampler.base
    if base.data.val_size <= 0:
        raise ParamsError(
            "data.val_size: the search scores trials on a held-out noisy validation split; "
            "set data.val_size > 0 (under fixed: in the space file, or -S data.val_size=300)"
        )
    key = _digest(to_dict(base.data))[:12]
    out = Path(cfg.workdir) / "data" / key / "prepared"
    root = Path(cfg.root)
    with flock(out.parent / "prepare.lock"):
        prepare_dataset(
            base.data,
            out,
            cache_dir=root / CACHE_DIR,
            workers=base.runtime.decode_workers,
            base=root,
        )
    return out


def _digest(tree: Any) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------- worker


def run_worker(cfg: SearchConfig, index: int = 0, *, echo: Any = print) -> dict[str, int]:
    """Take trials from the study until the target, the deadline, or repeated failures.
    Returns this worker's counts per trial kind."""
    import optuna
    import torch

    from noisyflow.data.prepare import load_prepared
    from noisyflow.train.runtime import Runtime

    _quiet_optuna()
    sampler = build_sampler(cfg)
    study = load_study(cfg, sampler, index=index)
    tracker = make_tracker(cfg)
    prepared = load_prepared(cfg.prepared_dir)
    with_truth = cfg.truth == "auto" and obj.truth_known(prepared)
    worker = f"{socket.gethostname()}-{os.getpid()}-w{index}"
    mine: dict[str, int] = {}
    last_errors: list[str] = []
    home = Path.cwd()

    while True:
        with flock(claim_path(cfg)):
            reap_stale(study, cfg, tracker)
            trials = study.get_trials(deepcopy=False)
            kinds = count_kinds(trials)
            taken = sum(kinds[k] for k in COUNTED) + kinds["running"]
            if taken >= cfg.trials:
                break
            if cfg.deadline is not None and time.time() >= cfg.deadline:
                echo(f"search: --timeout reached; worker {index} takes no more trials")
                break
            trial = study.ask()
            for key, value in {**_process_tags(), A_WORKER: worker}.items():
                trial.set_user_attr(key, value)

        number, start = trial.number, time.perf_counter()
        value: float | None = None
        kind, error = "failed", ""
        info: dict[str, float] = {}
        last: dict[int, float] = {}  # reported objective per training epoch
        overrides: dict[str, Any] = {}
        run_id = None
        trial_dir = cfg.study_dir / "trials" / f"{number:04d}"
        try:
            with Heartbeat(study, trial._trial_id, cfg.heartbeat_s):
                overrides = sampler.sample(trial)
                trial.set_user_attr(A_OVERRIDES, overrides)
                params = sampler.params_for(overrides)
                trial_dir.mkdir(parents=True, exist_ok=True)
                (trial_dir / "params.yaml").write_text(
                    yaml.safe_dump(to_dict(params), sort_keys=False)
                )
                run_id = tracker.start_trial(cfg.study, number, overrides, worker)
                if run_id:
                    trial.set_user_attr(A_RUN_ID, run_id)
                runtime = Runtime.from_params(params.runtime)

                def report(step: int, val: float, _trial: Any = trial, _last: dict = last) -> None:
                    _last[step] = val
                    _trial.report(val, step)
                    if _trial.should_prune():
                        raise optuna.TrialPruned(f"pruned after training epoch {step}")

                def on_epoch(
                    phase: str, epoch: int, stats: dict[str, float], _run: Any = run_id
                ) -> None:
                    if phase == "train" and obj.OBJECTIVE in stats:
                        tracker.log_metrics(_run, {obj.OBJECTIVE: stats[obj.OBJECTIVE]}, epoch)

                os.chdir(trial_dir)
                try:
                    outcome = obj.score(params, prepared, runtime, report=report, on_epoch=on_epoch)
                    value, kind = outcome.value, "complete"
                    if with_truth:  # logging only: a failure here does not fail the trial
                        try:
                            info = obj.truth(prepared, outcome, runtime)
                        except Exception as exc:
                            print(
                                f"warning: trial {number}: truth not scored: {exc}", file=sys.stderr
                            )
                    del outcome
                finally:
                    os.chdir(home)
        except optuna.TrialPruned as exc:
            kind, error = "pruned", str(exc)
        except KeyboardInterrupt:
            kind = "killed"
            with contextlib.suppress(Exception):
                trial.set_user_attr(A_KILLED, "interrupted")
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                if trial.params and A_RETRY_OF not in trial.user_attrs:
                    study.enqueue_trial(dict(trial.params), user_attrs={A_RETRY_OF: number})
            tracker.kill_trial(run_id)
            raise
        except Exception as exc:  # the trial failed; the study goes on
            kind, error = "failed", _one_line(exc)
            if not isinstance(exc, NoisyflowError):
                traceback.print_exc(file=sys.stderr)
        finally:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        seconds = time.perf_counter() - start
        trial.set_user_attr(A_SECONDS, round(seconds, 3))
        for k, v in info.items():
            trial.set_user_attr(k, v)
        if kind == "complete":
            study.tell(trial, value)
        elif kind == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            trial.set_user_attr(A_ERROR, error or "failed")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        metrics = {"objective": value, "seconds": seconds, **info} if value is not None else {}
        metrics.setdefault("seconds", seconds)
        tracker.end_trial(run_id, kind, metrics, {"noisyflow.error": error} if error else {})
        _write_result(trial_dir, number, kind, value, info, overrides, seconds, error)
        mine[kind] = mine.get(kind, 0) + 1
        done = sum(count_kinds(study.get_trials(deepcopy=False))[k] for k in COUNTED)
        line = progress_line(
            number, kind, value, info, seconds, done, cfg.trials, overrides, error, last
        )
        echo(line)
        last_errors = [*last_errors[-(MAX_SAME_FAILURES - 1) :], error if kind == "failed" else ""]
        if len(last_errors) == MAX_SAME_FAILURES and last_errors[0] and len(set(last_errors)) == 1:
            raise NoisyflowError(
                f"search worker {index}: {MAX_SAME_FAILURES} trials in a row failed with: "
                f"{last_errors[0]}"
            )
    return mine


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip(": ")


def _write_result(
    trial_dir: Path,
    number: int,
    kind: str,
    value: float | None,
    info: dict[str, float],
    overrides: dict[str, Any],
    seconds: float,
    error: str,
) -> None:
    with contextlib.suppress(OSError):
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "result.json").write_text(
            json.dumps(
                {
                    "trial": number,
                    "state": kind,
                    obj.OBJECTIVE: value,
                    **info,
                    "seconds": round(seconds, 3),
                    "overrides": overrides,
                    "error": error or None,
                },
                indent=2,
            )
        )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def progress_line(
    number: int,
    kind: str,
    value: float | None,
    info: dict[str, float],
    seconds: float,
    done: int,
    target: int,
    overrides: dict[str, Any],
    error: str = "",
    reported: dict[int, float] | None = None,
) -> str:
    """One line per finished trial (a pruned one shows its last reported epoch's value)."""
    if value is not None:
        score = f"{obj.OBJECTIVE} {value:.4f}"
    elif reported:
        step = max(reported)
        score = f"{obj.OBJECTIVE} {reported[step]:.4f} at epoch {step}"
    else:
        score = "-"
    parts = [f"trial {number:>3} {kind:<8}", score]
    if "true_test_accuracy" in info:
        parts.append(f"true_test_accuracy {info['true_test_accuracy']:.4f}")
    parts += [f"{seconds:6.1f} s", f"[{done}/{target}]"]
    parts.append(" ".join(f"{k}={_fmt(v)}" for k, v in overrides.items()))
    if error and kind == "failed":
        parts.append(f"({error})")
    return "  ".join(parts)


# ----------------------------------------------------------------------------- summary


@dataclass
class Summary:
    study: str
    counts: dict[str, int]
    best: Any  # optuna FrozenTrial or None
    best_overrides: dict[str, Any]
    correlation: dict[str, float] | None
    truth_key: str | None


def summarize(study: Any) -> Summary:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
    pairs = [
        (t.value, t.user_attrs["true_test_accuracy"])
        for t in complete
        if "true_test_accuracy" in t.user_attrs
    ]
    corr = None
    if pairs:
        corr = rank_correlation([a for a, _ in pairs], [b for _, b in pairs])
    return Summary(
        study.study_name,
        count_kinds(trials),
        best,
        dict(best.user_attrs.get(A_OVERRIDES, {})) if best else {},
        corr,
        "true_test_accuracy" if pairs else None,
    )


def write_best(summary: Summary, sampler: Sampler, out_dir: Path, cfg: SearchConfig) -> list[Path]:
    """best_overrides.yaml (the searched keys, dotted) and best_params.yaml (the full params the
    trial ran with, `fixed:` included). Returns the paths written."""
    best = summary.best
    if best is None:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    head = [
        f"# noisyflow search: best trial {best.number} of study {summary.study}",
        f"# objective {obj.OBJECTIVE} (noisy validation accuracy): {best.value:.6f}",
    ]
    if "true_test_accuracy" in best.user_attrs:
        head.append(
            f"# true_test_accuracy (not used to choose it): {best.user_attrs['true_test_accuracy']:.6f}"
        )
    fixed = sampler.space.fixed
    over = out_dir / "best_overrides.yaml"
    lines = [
        *head,
        "# apply: noisyflow search --apply --study " + summary.study,
        "#    or: dvc exp run " + dvc_set_args(summary.best_overrides),
    ]
    if fixed:
        lines.append(
            "# searched with these fixed settings (not applied): "
            + ", ".join(f"{k}={_fmt(v)}" for k, v in fixed.items())
        )
    over.write_text("\n".join(lines) + "\n" + overrides_yaml(summary.best_overrides))
    full = out_dir / "best_params.yaml"
    params = sampler.params_for(summary.best_overrides)
    full.write_text(
        "\n".join([*head, "# the complete params the trial ran with, fixed: settings included"])
        + "\n"
        + yaml.safe_dump(to_dict(params), sort_keys=False)
    )
    return [over, full]


def dvc_set_args(overrides: dict[str, Any]) -> str:
    def scalar(v: Any) -> str:
        return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()

    return " ".join(f"-S '{k}={scalar(v)}'" for k, v in overrides.items())


def print_summary(
    summary: Summary, cfg: SearchConfig, files: list[Path], seconds: float, echo: Any = print
) -> None:
    c = summary.counts
    counted = sum(c[k] for k in COUNTED)
    extra = f"; {c['killed']} killed (retried, not counted)" if c.get("killed") else ""
    echo(
        f"search {summary.study}: {counted}/{cfg.trials} trials ({c['complete']} complete, "
        f"{c['pruned']} pruned, {c['failed']} failed{extra}) in {seconds:.1f} s"
    )
    best = summary.best
    if best is None:
        echo("no trial completed; nothing to apply")
        return
    truth = best.user_attrs.get("true_test_accuracy")
    line = f"best: trial {best.number}, {obj.OBJECTIVE} {best.value:.4f} (noisy validation)"
    if truth is not None:
        line += f", true_test_accuracy {truth:.4f}"
    echo(line)
    for k, v in summary.best_overrides.items():
        echo(f"  {k}: {_fmt(v)}")
    if summary.correlation:
        r = summary.correlation
        echo(
            f"rank correlation of {obj.OBJECTIVE} with {summary.truth_key} over "
            f"{int(r['n'])} complete trials: Spearman {r['spearman']:.3f} (p {r['spearman_p']:.3g}),"
            f" Kendall {r['kendall']:.3f} (p {r['kendall_p']:.3g})"
        )
    elif summary.truth_key:
        echo(
            f"rank correlation with {summary.truth_key}: needs 3+ complete trials of varying score"
        )
    if files:
        echo(f"written: {files[0]} and {files[1].name}")
        echo(
            f"apply:   noisyflow search --apply --study {summary.study}   (params.yaml, comments kept)"
        )
        echo(f"   or:   dvc exp run {dvc_set_args(summary.best_overrides)}")
    dash = cfg.storage if "://" in cfg.storage else str(Path(cfg.storage))
    echo(f"dashboard: optuna-dashboard {redact(dash)}")


# ----------------------------------------------------------------------------- Prefect


def worker_env(index: int, workers: int) -> dict[str, str]:
    """Environment of worker process `index`: this code first on PYTHONPATH, a fair share of
    the CPU threads, and (several GPUs, none chosen) one GPU per worker, round robin."""
    from pipeline.dvcrun import child_env

    code_root = str(Path(__file__).resolve().parents[1])
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (code_root, env.get("PYTHONPATH")) if p)
    env.setdefault("NOISYFLOW_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    if "CUDA_VISIBLE_DEVICES" not in env:
        try:
            import torch

            n = torch.cuda.device_count()
        except Exception:
            n = 0
        if n > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(index % n)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this worker when the search process that started it
    dies (a killed search leaves no orphan workers; the restart reaps their trials)."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != int(parent):  # it died before the line above
        os._exit(1)


def spawn_worker(config_path: str, index: int, workers: int, on_line: Any) -> None:
    """Run one worker process to its end, streaming its lines; raise StageError (transient when
    killed by a signal or the storage was locked) on failure."""
    from pipeline.dvcrun import classify, stream

    cfg = SearchConfig.load(config_path)
    cwd = cfg.study_dir / "workers" / f"w{index}"
    cwd.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pipeline.search", "worker", config_path, str(index)]
    env = {**worker_env(index, workers), PARENT_ENV: str(os.getpid())}
    code, tail = stream(cmd, cwd=cwd, env=env, on_line=on_line)
    if code != 0:
        raise classify(code, tail, f"search worker {index}")


def _prefect_parts() -> tuple[Any, Any]:
    """The Prefect task and flow (built on first use: `noisyflow search --workers 1` and the
    library never import Prefect)."""
    global _FLOW, _TASK
    if _FLOW is not None:
        return _TASK, _FLOW
    from prefect import flow, get_run_logger, task
    from prefect.cache_policies import NO_CACHE

    from pipeline.dvcrun import is_transient

    @task(
        cache_policy=NO_CACHE,
        retry_condition_fn=is_transient,
        task_run_name="search-worker-{index}",
    )
    def search_worker(config_path: str, index: int, workers: int) -> None:
        """One worker process taking trials from the study until its target. Its lines go to
        this process's stdout (the progress lines); the Prefect log gets start and end."""
        logger = get_run_logger()
        logger.info("search worker %d starting (%s)", index, config_path)
        spawn_worker(config_path, index, workers, lambda line: print(line, flush=True))
        logger.info("search worker %d finished", index)

    @flow(name=FLOW_NAME)
    def search_flow(config_path: str, workers: int, retries: int = 1) -> None:
        """N worker processes on one study (each retried once when killed by a signal), then
        a table of the study's trials as the artifact `noisyflow-search`."""
        job = search_worker.with_options(retries=retries, retry_delay_seconds=1)
        futures = [job.submit(config_path, i, workers) for i in range(workers)]
        try:
            for future in futures:
                future.result()
        finally:
            with contextlib.suppress(Exception):
                publish_trials(SearchConfig.load(config_path))

    _TASK, _FLOW = search_worker, search_flow
    return _TASK, _FLOW


_FLOW: Any = None
_TASK: Any = None


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One row per trial: number, state, objective, truth, seconds, overrides."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"trial": t.number, "state": trial_kind(t)}
        row[obj.OBJECTIVE] = None if t.value is None else round(t.value, 4)
        if "true_test_accuracy" in t.user_attrs:
            row["true_test_accuracy"] = round(t.user_attrs["true_test_accuracy"], 4)
        row["seconds"] = t.user_attrs.get(A_SECONDS)
        over = t.user_attrs.get(A_OVERRIDES, {})
        row["overrides"] = " ".join(f"{k}={_fmt(v)}" for k, v in over.items())
        rows.append(row)
    return rows


def publish_trials(cfg: SearchConfig) -> None:
    """The study's trials as a Prefect table artifact (inside a flow run)."""
    from prefect.artifacts import create_table_artifact

    sampler = build_sampler(cfg)
    rows = trial_rows(load_study(cfg, sampler))
    create_table_artifact(rows, key=FLOW_NAME, description=f"trials of study {cfg.study}")


def run_flow(config_path: Path, workers: int) -> bool:
    """The Prefect flow with `workers` worker tasks; True when it completed."""
    from prefect.task_runners import ThreadPoolTaskRunner

    _, search_flow = _prefect_parts()
    runner = search_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=workers))
    state = runner(config_path=str(config_path), workers=workers, return_state=True)
    if not state.is_completed():
        print(f"search flow: {state.name}: {state.message or ''}", file=sys.stderr, flush=True)
    return state.is_completed()


# ----------------------------------------------------------------------------- CLI


def config_from_args(args: argparse.Namespace) -> tuple[SearchConfig, Sampler]:
    """Resolve and check everything the command line gives; no data touched yet."""
    params_path = Path(args.params).resolve()
    root = params_path.parent
    space_path = Path(args.space)
    if not space_path.is_absolute():  # relative to the current folder, else to the project
        here = (Path.cwd() / space_path).resolve()
        space_path = here if here.is_file() else (root / space_path).resolve()
    if not space_path.is_file():
        raise ParamsError(f"{args.space}: search space file not found (--space)")
    workdir = Path(args.workdir).resolve() if args.workdir else root / DEFAULT_WORKDIR
    storage = args.storage or default_storage(workdir)
    if "://" not in storage:
        storage = str((Path.cwd() / storage).resolve())
    overrides = parse_assignments(args.set_param)
    cfg = SearchConfig(
        root=str(root),
        params_path=str(params_path),
        space_path=str(space_path),
        overrides=overrides,
        study="",
        storage=storage,
        trials=int(args.trials or 0),
        workdir=str(workdir),
        pruner=args.pruner,
        truth=args.truth,
        sampler_seed=args.seed,
        startup_trials=args.startup_trials,
    )
    sampler = build_sampler(cfg)
    cfg.study = args.study or f"noisyflow-{sampler.fingerprint()[:8]}"
    return cfg, sampler


def search_cli(args: argparse.Namespace) -> int:
    """`noisyflow search`: see the module docstring."""
    if args.apply:
        return apply_cli(args)
    if args.trials is None or args.trials < 1:
        raise ParamsError("--trials: give the number of trials (N >= 1), or --apply")
    if args.workers < 1:
        raise ParamsError("--workers: must be >= 1")
    if args.timeout is not None and args.timeout <= 0:
        raise ParamsError("--timeout: must be > 0 seconds")
    started = time.time()
    cfg, sampler = config_from_args(args)
    if args.timeout:
        cfg.deadline = started + args.timeout
    from noisyflow import tracking

    if sampler.base.tracking.enabled:
        cfg.tracking_uri = tracking.tracking_uri(Path(cfg.root))
        cfg.experiment = sampler.base.tracking.experiment
    tracker = make_tracker(cfg)  # fails fast when an MLflow server is down
    with flock(claim_path(cfg)):
        study, created = create_or_check_study(cfg, sampler)
        cfg.parent_run_id = (
            tracker.open_parent(study, cfg, sampler) if isinstance(tracker, Tracker) else None
        )
    kinds = count_kinds(study.get_trials(deepcopy=False))
    done = sum(kinds[k] for k in COUNTED)
    print(
        f"search {cfg.study} ({'new' if created else f'resumed: {done} trials done'}) in "
        f"{redact(cfg.storage)}; target {cfg.trials} trials, {args.workers} worker(s); "
        f"objective: {obj.OBJECTIVE_DESCRIPTION}",
        flush=True,
    )
    cfg.prepared_dir = str(prepare_data(cfg, sampler))
    config_path = cfg.study_dir / f"config-{socket.gethostname()}-{os.getpid()}.json"
    cfg.save(config_path)
    ok = True
    try:
        if args.workers == 1:
            run_worker(cfg, 0, echo=lambda line: print(line, flush=True))
        else:
            ok = run_flow(config_path, args.workers)
    except KeyboardInterrupt:
        print("search: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        with contextlib.suppress(OSError):
            config_path.unlink()
    study = load_study(cfg, sampler)
    summary = summarize(study)
    out_dir = (
        Path(args.out)
        if args.out
        else Path(cfg.root) / "outputs" / "search" / _safe_name(cfg.study)
    )
    files = write_best(summary, sampler, out_dir, cfg)
    print_summary(summary, cfg, files, time.time() - started)
    tracker.close_parent(summary, files, ok and summary.best is not None)
    return 0 if ok and summary.best is not None else 1


def apply_cli(args: argparse.Namespace) -> int:
    """`noisyflow search --apply`: the best trial's searched values into params.yaml."""
    import optuna

    from pipeline.workspace import apply_overrides, validate_overrides

    cfg, sampler = config_from_args(args)
    _quiet_optuna()
    storage = open_storage(cfg.storage)
    names = [
        s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    ]
    if cfg.study not in names:
        listed = ", ".join(names) or "none"
        raise ParamsError(
            f"--study {cfg.study}: no such study in {redact(cfg.storage)} (studies: {listed}); "
            "name it with --study"
        )
    summary = summarize(optuna.load_study(study_name=cfg.study, storage=storage))
    if summary.best is None:
        raise ParamsError(f"study {cfg.study}: no completed trial to apply")
    root = Path(cfg.params_path).parent
    if Path(cfg.params_path).name != "params.yaml":
        raise ParamsError("--apply writes params.yaml: give --params <project>/params.yaml")
    current = to_dict(load_params(cfg.params_path))
    validate_overrides(root, summary.best_overrides)
    apply_overrides(root, summary.best_overrides)
    from noisyflow.config import get_dotted

    print(
        f"params.yaml: best trial {summary.best.number} of {cfg.study} ({obj.OBJECTIVE} {summary.best.value:.4f})"
    )
    for k, v in summary.best_overrides.items():
        print(f"  {k}: {_fmt(get_dotted(current, k))} -> {_fmt(v)}")
    return 0


def _worker_main(argv: list[str]) -> int:
    """`python -m pipeline.search worker CONFIG INDEX` (what the Prefect tasks start)."""
    _die_with_parent()
    config_path, index = argv[0], int(argv[1])
    cfg = SearchConfig.load(config_path)
    try:
        run_worker(cfg, index, echo=lambda line: print(line, flush=True))
    except NoisyflowError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: not a transient failure, Prefect must not retry
        print(f"search worker {index}: interrupted", file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "worker":
        sys.exit(_worker_main(sys.argv[2:]))
    print("usage: python -m pipeline.search worker CONFIG.json INDEX (use `noisyflow search`)")
    sys.exit(2)
