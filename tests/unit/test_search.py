"""The search's pure parts and its storage bookkeeping, without a real search: the space file
(checks, valid combinations only), the objective's blindness to the test split and the truth,
rank correlation, stale-trial reaping, the CLI's one-line errors and `--apply`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from noisyflow.config import load_params, with_overrides
from noisyflow.errors import ParamsError
from noisyflow.search import objective as obj
from noisyflow.search.rank import rank_correlation
from noisyflow.search.space import load_space, param_name, parse_space
from noisyflow.types import Prepared, Split
from tests.helpers import REPO, write_params

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def base_params():
    return load_params(REPO / "params.yaml")


def _space(search: dict[str, Any], fixed: dict[str, Any] | None = None):
    return parse_space({"fixed": fixed or {}, "search": search}, origin="space.yaml")


# ----------------------------------------------------------------------------- space


def test_default_space_samples_only_valid_combinations(base_params):
    """300 random trials over the shipped space: every one builds valid params, every method
    choice is reached, and the refused combinations never occur."""
    sampler = load_space(REPO / "params/search_space.yaml").check(base_params)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen: dict[str, set] = {}
    combos = []

    def objective(trial):
        over = sampler.sample(trial)
        p = sampler.params_for(over)  # raises on an invalid combination
        combos.append(p.method)
        for key, value in over.items():
            seen.setdefault(key, set()).add(value if key.startswith("method.") else "x")
        for key in over:  # conditional keys only when their method is chosen
            if key.startswith("losses."):
                assert key.split(".")[1] == p.method.loss
            if key.startswith("ssl."):
                assert key.split(".")[1] == p.method.ssl
        return 0.0

    study.optimize(objective, n_trials=300)
    for dim in sampler.space.dims:
        if dim.key.startswith("method."):
            assert seen[dim.key] == set(dim.choices), dim.key
    for m in combos:
        if m.selection == "coteaching":
            assert m.networks == 2 and m.ssl == "none"
        if m.ssl == "mixmatch":
            assert m.mixup == "none" and m.selection in ("gmm", "aum")
        if m.selection == "aum":
            assert m.mixup != "mixup"
    assert len(sampler.valid) < 5 * 5 * 3 * 3 * 2 * 3  # some were refused


def test_tpe_with_restricted_choices_keeps_one_distribution_per_name(base_params):
    """Optuna refuses a parameter name whose choices change between trials; restricted method
    entries get their own names, so TPE (multivariate, grouped, as the search runs it) works."""
    sampler = load_space(REPO / "params/search_space.yaml").check(base_params)
    tpe = optuna.samplers.TPESampler(seed=1, n_startup_trials=5, multivariate=True, group=True)
    study = optuna.create_study(sampler=tpe, direction="maximize")
    rng = np.random.default_rng(0)

    def objective(trial):
        sampler.params_for(sampler.sample(trial))
        return float(rng.random())

    study.optimize(objective, n_trials=40)
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    names = {n for t in study.trials for n in t.params}
    assert "method.selection" in names
    keys = {d.key for d in sampler.space.dims}
    assert all(n in keys or n.split("[")[0] in keys for n in names)


def test_open_choices_follow_earlier_choices(base_params):
    sampler = _space(
        {
            "method.selection": ["gmm", "coteaching", "curriculum"],
            "method.ssl": ["mixmatch", "fixmatch", "none"],
            "method.mixup": ["none", "mixup"],
        }
    ).check(base_params)
    ssl = sampler.space.dims[1]
    mix = sampler.space.dims[2]
    assert sampler.open_choices(ssl, {"method.selection": "gmm"}) == (
        "mixmatch",
        "fixmatch",
        "none",
    )
    assert sampler.open_choices(ssl, {"method.selection": "coteaching"}) == ("none",)
    assert sampler.open_choices(ssl, {"method.selection": "curriculum"}) == ("none",)
    chosen = {"method.selection": "gmm", "method.ssl": "mixmatch"}
    assert sampler.open_choices(mix, chosen) == ("none",)
    assert param_name("method.ssl", ("fixmatch", "none")) == "method.ssl[fixmatch,none]"

    class Fixed:  # a trial that picks the first choice offered
        def __init__(self):
            self.asked = {}

        def suggest_categorical(self, name, choices):
            self.asked[name] = list(choices)
            return choices[-1] if name == "method.selection" else choices[0]

    t = Fixed()
    over = sampler.sample(t)
    assert over == {
        "method.selection": "curriculum",
        "method.ssl": "none",  # the only open choice: set, not asked
        "method.mixup": "none",
    }
    assert set(t.asked) == {"method.selection", "method.mixup"}


def test_numeric_ranges_and_conditions(base_params):
    sampler = _space(
        {
            "method.loss": ["ce", "gce"],
            "warmup.epochs": {"low": 2, "high": 9},
            "train.lr": {"low": 0.01, "high": 0.1, "log": True},
            "losses.gce.q": {"low": 0.2, "high": 1.0, "step": 0.1, "when": {"method.loss": "gce"}},
        }
    ).check(base_params)
    kinds = {d.key: d.kind for d in sampler.space.dims}
    assert kinds == {
        "method.loss": "categorical",
        "warmup.epochs": "int",
        "train.lr": "float",
        "losses.gce.q": "float",
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    study.optimize(lambda t: float(len(sampler.sample(t))), n_trials=30)
    for t in study.trials:
        assert isinstance(t.params["warmup.epochs"], int)
        assert 0.01 <= t.params["train.lr"] <= 0.1
        assert ("losses.gce.q" in t.params) == (t.params["method.loss"] == "gce")


@pytest.mark.parametrize(
    ("search", "fixed", "message"),
    [
        ({"losses.gce.qq": {"low": 0.1, "high": 1.0}}, {}, "did you mean 'losses.gce.q'"),
        ({"train.lr": {"low": 0.01, "high": 20.0}}, {}, "train.lr: must be <= 10.0"),
        ({"method.loss": ["ce", "gcee"]}, {}, "did you mean 'gce'"),
        ({"method.los": ["ce"]}, {}, "did you mean 'method.loss'"),
        ({"data.noise.rate": {"low": 0.1, "high": 0.5}}, {}, "cannot be searched"),
        ({"runtime.threads": [1, 2]}, {}, "cannot be searched"),
        ({"method.selection": ["coteaching"]}, {}, "coteaching"),
        ({"method.selection": ["gmm", "curriculum"]}, {"method.ssl": "mixmatch"}, "never runs"),
        ({"train.lr": {"low": 0.1, "high": 0.01}}, {}, "must be below high"),
        ({"train.lr": {"low": 0.0, "high": 0.1, "log": True}}, {}, "log range needs low > 0"),
        ({"train.lr": {"lo": 0.0, "high": 0.1}}, {}, "unknown field 'lo'"),
        ({"train.lr": "0.1"}, {}, "expected a list of choices"),
        ({"warmup.epochs": {"low": 1.5, "high": 3.0}}, {}, "expected an integer"),
        (
            {"losses.gce.q": {"low": 0.2, "high": 1.0, "when": {"method.loss": "gce"}}},
            {},
            "not a categorical entry earlier",
        ),
        (
            {
                "method.loss": ["ce"],
                "losses.gce.q": {"low": 0.2, "high": 1.0, "when": {"method.loss": "gce"}},
            },
            {},
            "never takes 'gce'",
        ),
        ({"train.lr": {"low": 0.01, "high": 0.1}}, {"train.lr": 0.05}, "both fixed and searched"),
        ({"train.lr": {"low": 0.01, "high": 0.1}}, {"train.epochz": 3}, "fixed: unknown key"),
        ({}, {}, "nothing to search"),
    ],
)
def test_bad_space_names_file_and_entry(base_params, search, fixed, message):
    with pytest.raises(ParamsError) as err:
        _space(search, fixed).check(base_params)
    text = str(err.value)
    assert text.startswith("space.yaml: ") and message in text, text
    assert "\n" not in text


def test_command_line_fixed_key_cannot_be_searched(base_params):
    space = _space({"warmup.epochs": {"low": 2, "high": 9}})
    with pytest.raises(ParamsError, match="search.warmup.epochs: also fixed on the command line"):
        space.check(base_params, {"warmup.epochs": 1})


def test_space_file_format_errors(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("serach:\n  train.lr: [0.1]\n")
    with pytest.raises(ParamsError, match="unknown section 'serach' \\(did you mean 'search'"):
        load_space(bad)
    bad.write_text("search: [1, 2\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_space(bad)
    with pytest.raises(ParamsError, match="not found"):
        load_space(tmp_path / "missing.yaml")


def test_fingerprint_follows_params_and_space_not_runtime(base_params):
    space = _space({"train.lr": {"low": 0.01, "high": 0.1}})
    a = space.check(base_params).fingerprint()
    assert space.check(with_overrides(base_params, {"runtime.threads": 3})).fingerprint() == a
    assert space.check(base_params, {"train.epochs": 3}).fingerprint() != a
    other = _space({"train.lr": {"low": 0.01, "high": 0.2}})
    assert other.check(base_params).fingerprint() != a


# ----------------------------------------------------------------------------- objective


class _Poison:
    """Raises on any use: stands for the test split and meta.json in a trial."""

    def __init__(self, what: str) -> None:
        object.__setattr__(self, "_what", what)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the objective read the {self._what} ({name})")

    def __len__(self) -> int:
        raise AssertionError(f"the objective read the {self._what} (len)")

    def __getitem__(self, key: Any) -> Any:
        raise AssertionError(f"the objective read the {self._what} ([{key!r}])")

    def __iter__(self):
        raise AssertionError(f"the objective read the {self._what} (iter)")


@dataclass
class _TruthlessSplit(Split):
    """A split whose true labels (and what derives from them) raise when read."""

    def __getattribute__(self, name: str) -> Any:
        if name in ("true_labels", "truth_known", "noise_mask"):
            raise AssertionError(f"the objective read the true labels ({name})")
        return super().__getattribute__(name)


def _poisoned(prepared: Prepared) -> Prepared:
    def split(s: Split) -> Split:
        return _TruthlessSplit(s.x, s.labels, s.index, s.true_labels, s.paths)

    return Prepared(
        train=split(prepared.train),
        test=_Poison("test split"),  # type: ignore[arg-type]
        classes=prepared.classes,
        val=split(prepared.val),
        meta=_Poison("meta.json (noise record)"),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny digits params (val split held out) and its prepared data."""
    from noisyflow.data.prepare import prepare_dataset

    tmp = tmp_path_factory.mktemp("search-data")
    params = load_params(
        write_params(
            tmp / "params.yaml",
            {"data.subset": 500, "data.test_size": 100, "data.val_size": 100, "train.epochs": 2},
        )
    )
    prepared = prepare_dataset(params.data, tmp / "prepared", cache_dir=tmp / "cache")
    assert prepared.true_labels is not None and prepared.test.true_labels is not None
    return params, prepared


def test_objective_never_reads_test_split_or_true_labels(tiny):
    """A trial on data whose test split, true labels and noise record raise on any access
    scores exactly what it scores on the real data: the objective never looks at them."""
    from noisyflow.train.runtime import Runtime

    params, prepared = tiny
    reported: list[tuple[int, float]] = []
    poisoned = _poisoned(prepared)
    with pytest.raises(AssertionError, match="true labels"):
        poisoned.train.true_labels  # noqa: B018 (the poison works)
    blind_out = obj.score(
        params, poisoned, Runtime.cpu(), report=lambda s, v: reported.append((s, v))
    )
    plain_out = obj.score(params, prepared, Runtime.cpu())
    assert blind_out.value == pytest.approx(plain_out.value, abs=1e-12)
    assert [s for s, _ in reported] == list(range(params.train.epochs))
    assert all(0.0 <= v <= 1.0 for _, v in reported)
    # the truth is read only afterwards, by `truth`, for logging
    with pytest.raises(AssertionError):
        obj.truth(poisoned, blind_out, Runtime.cpu())
    truth = obj.truth(prepared, blind_out, Runtime.cpu())
    assert 0.0 <= truth["true_test_accuracy"] <= 1.0 and "detection_f1" in truth


def test_objective_pruning_exception_propagates(tiny):
    from noisyflow.train.runtime import Runtime

    params, prepared = tiny

    class StopTrialError(Exception):
        pass

    def report(step, value):
        raise StopTrialError(step)

    with pytest.raises(StopTrialError):
        obj.score(params, prepared, Runtime.cpu(), report=report)


def test_blind_needs_a_validation_split(tiny):
    params, prepared = tiny
    no_val = Prepared(prepared.train, prepared.test, prepared.classes, None, {})
    with pytest.raises(ParamsError, match="data.val_size"):
        obj.blind(no_val)
    seen = obj.blind(prepared)
    assert len(seen.test.labels) == 0 and seen.meta == {}
    assert seen.train.true_labels is None and seen.val.true_labels is None
    assert np.array_equal(seen.val.labels, prepared.val.labels)


# ----------------------------------------------------------------------------- rank


def test_rank_correlation_values():
    from scipy import stats

    x = [0.1, 0.4, 0.35, 0.8, 0.5]
    y = [0.2, 0.3, 0.5, 0.9, 0.6]
    r = rank_correlation(x, y)
    assert r["n"] == 5
    assert r["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert r["kendall"] == pytest.approx(stats.kendalltau(x, y).statistic)
    assert rank_correlation([1, 2, 3], [3, 4, 5])["spearman"] == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3], [5, 4, 3])["kendall"] == pytest.approx(-1.0)
    assert rank_correlation([1, 2], [1, 2]) is None
    assert rank_correlation([1, 1, 1], [1, 2, 3]) is None
    assert rank_correlation([1, 2, float("nan"), 4], [1, 2, 3, 4])["n"] == 3


# ----------------------------------------------------------------------------- storage


def _cfg(tmp_path: Path, storage: str, **kw):
    from pipeline.search import SearchConfig

    return SearchConfig(
        root=str(tmp_path),
        params_path=str(tmp_path / "params.yaml"),
        space_path=str(tmp_path / "space.yaml"),
        overrides={},
        study="s",
        storage=storage,
        trials=5,
        workdir=str(tmp_path / "work"),
        **kw,
    )


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_reap_stale_trials_and_count(tmp_path, kind):
    """A RUNNING trial whose local process is gone, or whose remote heartbeat is older than the
    grace period, is failed as killed (not counted) and its params enqueued once more."""
    from pipeline import search

    storage = f"sqlite:///{tmp_path / 'o.db'}" if kind == "sqlite" else str(tmp_path / "o.log")
    cfg = _cfg(tmp_path, storage, grace_s=30)
    study = optuna.create_study(
        study_name="s", storage=search.open_storage(storage), direction="maximize"
    )
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    tags = {
        "local-dead": {search.A_HOST: host, search.A_PID: dead.pid, search.A_PID_START: 0.0},
        "local-alive": search._process_tags(),
        "remote-stale": {search.A_HOST: "elsewhere", search.A_HEARTBEAT: time.time() - 300},
        "remote-fresh": {search.A_HOST: "elsewhere", search.A_HEARTBEAT: time.time()},
    }
    numbers = {}
    for name, attrs in tags.items():
        trial = study.ask()
        trial.suggest_float("train.lr", 0.01, 0.1)
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        numbers[name] = trial.number
    done = study.ask()
    done.suggest_float("train.lr", 0.01, 0.1)
    study.tell(done, 0.5)
    failed = study.ask()
    failed.set_user_attr(search.A_ERROR, "TrainingError: NaN")
    study.tell(failed, state=optuna.trial.TrialState.FAIL)

    reaped = search.reap_stale(study, cfg, search.NullTracker())
    assert sorted(reaped) == sorted([numbers["local-dead"], numbers["remote-stale"]])
    counts = search.count_kinds(study.get_trials())
    assert counts == {
        "complete": 1,
        "pruned": 0,
        "failed": 1,
        "killed": 2,
        "running": 2,
        "waiting": 2,
    }
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert {t.user_attrs[search.A_RETRY_OF] for t in waiting} == set(reaped)
    assert search.reap_stale(study, cfg, search.NullTracker()) == []  # once only


def test_storage_urls(tmp_path):
    from pipeline import search

    assert (
        search.redact("postgresql://me:secret@db:5432/optuna")
        == "postgresql://me:***@db:5432/optuna"
    )
    assert search.sqlite_path("sqlite:////a/b.db") == Path("/a/b.db")
    assert search.sqlite_path("postgresql://db/x") is None
    journal = search.open_storage(str(tmp_path / "j" / "study.log"))
    assert type(journal).__name__ == "JournalStorage"
    with pytest.raises(ParamsError, match="--storage"):
        search.open_storage("nosuchdialect://x/y")
    cfg = _cfg(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    assert search.claim_path(cfg) == tmp_path / "x.db.claim"


def test_progress_line_and_dvc_args():
    from pipeline import search

    over = {"method.loss": "gce", "losses.gce.q": 0.61234567, "method.networks": 2}
    line = search.progress_line(
        3, "complete", 0.81234, {"true_test_accuracy": 0.9}, 12.34, 4, 20, over
    )
    assert line.startswith("trial   3 complete") and "val_accuracy 0.8123" in line
    assert (
        "true_test_accuracy 0.9000" in line and "[4/20]" in line and "losses.gce.q=0.6123" in line
    )
    pruned = search.progress_line(4, "pruned", None, {}, 1.0, 5, 20, over, "x", {0: 0.3, 1: 0.25})
    assert "val_accuracy 0.2500 at epoch 1" in pruned
    assert search.dvc_set_args(over) == (
        "-S 'method.loss=gce' -S 'losses.gce.q=0.61234567' -S 'method.networks=2'"
    )


# ----------------------------------------------------------------------------- CLI


def _project(tmp_path: Path, search: dict[str, Any] | None = None) -> tuple[Path, Path]:
    params = write_params(tmp_path / "params.yaml", {"data.subset": 300})
    space = tmp_path / "space.yaml"
    space.write_text(
        yaml.safe_dump(
            {
                "fixed": {"data.val_size": 50},
                "search": search or {"train.lr": {"low": 0.01, "high": 0.1, "log": True}},
            }
        )
    )
    return params, space


@pytest.mark.parametrize(
    ("search", "extra", "message"),
    [
        ({"losses.gce.qq": {"low": 0.1, "high": 1.0}}, [], "unknown key 'losses.gce.qq'"),
        (None, ["-S", "train.epochz=2"], "fixed: unknown key 'train.epochz'"),
        (None, ["--space", "nope.yaml"], "search space file not found"),
        (None, ["--trials", "0"], "--trials"),
    ],
)
def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, monkeypatch, search, extra, message):
    from pipeline.cli import main

    monkeypatch.chdir(tmp_path)
    params, space = _project(tmp_path, search)
    argv = ["search", "--trials", "2", "--params", str(params), "--space", str(space), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not (tmp_path / ".noisyflow").exists()  # refused before anything ran


def test_apply_writes_best_trial_into_params_keeping_comments(tmp_path, capsys, monkeypatch):
    from pipeline import search
    from pipeline.cli import main

    monkeypatch.chdir(tmp_path)
    params, space = _project(tmp_path)
    text = params.read_text()
    params.write_text("# my project\n" + text.replace("lr: 0.05", "lr: 0.05  # keep me", 1))
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(
        study_name="st", storage=search.open_storage(storage), direction="maximize"
    )
    dist = {"train.lr": optuna.distributions.FloatDistribution(0.01, 0.1, log=True)}
    for value, lr in ((0.5, 0.02), (0.7, 0.03), (0.6, 0.04)):
        study.add_trial(
            optuna.trial.create_trial(
                params={"train.lr": lr},
                distributions=dist,
                value=value,
                user_attrs={search.A_OVERRIDES: {"train.lr": lr}},
            )
        )
    argv = ["search", "--apply", "--study", "st", "--storage", storage]
    argv += ["--params", str(params), "--space", str(space)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "train.lr: 0.05 -> 0.03" in out
    written = params.read_text()
    assert written.startswith("# my project") and "# keep me" in written
    assert load_params(params).train.lr == 0.03
    assert load_params(params).warmup.lr == 0.05  # only the searched key
    assert main([*argv[:3], "nope", *argv[4:]]) == 2
    assert "no such study" in capsys.readouterr().err


def test_search_command_is_registered():
    from pipeline.cli import build_parser

    args = build_parser().parse_args(["search", "--trials", "3", "--workers", "2"])
    assert args.trials == 3 and args.workers == 2 and args.space == "params/search_space.yaml"
    assert args.storage is None and args.pruner == "median" and callable(args.handler)


def test_worker_env_shares_cpus(monkeypatch):
    from pipeline import search

    monkeypatch.delenv("NOISYFLOW_THREADS", raising=False)
    env = search.worker_env(1, 2)
    assert int(env["NOISYFLOW_THREADS"]) == max(1, (os.cpu_count() or 1) // 2)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO)
