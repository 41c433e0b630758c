"""Method benchmark: every method of the toolbox and the main combinations, through the same
recipes as the DVC stages, on digits and on a CIFAR-10 subset; prints one table.

Protocol
- digits (scikit-learn, 1,297 train / 500 test, stratified split seed 0): symmetric 20/40/60/80%
  (a label replaced by one of the *other* classes), asymmetric 40% (1<->7, 3<->8, 5<->6, 4<->9),
  instance-dependent 40% (Xia et al. 2020); budget 40 epochs per method.
- cifar (the first 5,000 training images of the CIFAR-10 pack, its 10,000 test images): symmetric
  50% (DivideMix convention: redrawn from all classes, realised 45%), asymmetric 40% (CIFAR-10
  map), instance-dependent 40%; budget 30 epochs per method.
- Every method uses the same network (`model` in params.yaml, `--set model.arch=...` to change)
  and the same epoch budget: warm-up + training + self-learning epochs add up to it.
- Seeds: noise seed = network seed. Defaults were tuned on seeds 0, 1, 2; report on 3, 4, 5.

    python benchmarks/methods.py --suite digits --seeds 3 4 5 --jobs 2
    python benchmarks/methods.py --suite cifar --methods ce noisyflow --seeds 3
    python benchmarks/methods.py --list          # the methods and what each sets
    python benchmarks/methods.py --table benchmarks/results/*.jsonl   # the table of earlier runs

Each cell writes one JSON row to `--out`, with the `--set` overrides it ran under (the table names
such rows apart). An `--out` that already holds rows is never emptied silently: `--resume` adds to
it, skipping the cells measured under the same overrides, and `--overwrite` starts it afresh.

Diagnosis: `--curves` adds each run's per-epoch ensemble test accuracy (on at most 2,000 test
images) and training statistics to its JSON row; `--save-evidence DIR` keeps what the label-issue
decision read (network probabilities, prototype similarities, clean probabilities, true labels),
and `--replay DIR/*.npz --set correct.clean_margin=0.3` scores that decision again under other
`correct:` settings in seconds, without retraining.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from packs import CIFAR_PACK as PACK
from packs import REPO

SUITES: dict[str, dict[str, Any]] = {
    "digits": {
        "budget": 40,
        "data": {"data.source": "digits", "data.test_size": 500},
        "settings": {
            "sym-20": {"data.noise.type": "symmetric", "data.noise.rate": 0.2},
            "sym-40": {"data.noise.type": "symmetric", "data.noise.rate": 0.4},
            "sym-60": {"data.noise.type": "symmetric", "data.noise.rate": 0.6},
            "sym-80": {"data.noise.type": "symmetric", "data.noise.rate": 0.8},
            "asym-40": {"data.noise.type": "asymmetric", "data.noise.rate": 0.4},
            "inst-40": {"data.noise.type": "instance", "data.noise.rate": 0.4},
        },
    },
    "cifar": {
        "budget": 30,
        "data": {
            "data.source": "cifar10",
            "data.path": str(PACK),
            "data.subset": 5000,
            "augment.hflip": True,
            "augment.shift": 2,
        },
        "settings": {
            "sym-50": {
                "data.noise.type": "symmetric",
                "data.noise.rate": 0.5,
                "data.noise.include_true_class": True,
            },
            "asym-40": {
                "data.noise.type": "asymmetric",
                "data.noise.rate": 0.4,
                "data.noise.map": "cifar10",
            },
            "inst-40": {"data.noise.type": "instance", "data.noise.rate": 0.4},
        },
    },
}

ONE_NET_CE = {
    "method.networks": 1,
    "method.selection": "none",
    "method.ssl": "none",
    "method.correction": "none",
}
# name -> params overrides (pipeline methods) or None (baselines outside the pipeline)
METHODS: dict[str, dict[str, Any] | None] = {
    "clean": None,  # CE on the true labels: the ceiling
    "oracle": None,  # CE on the truly clean samples only
    "ce": ONE_NET_CE,
    "gce": {**ONE_NET_CE, "method.loss": "gce"},
    "sce": {**ONE_NET_CE, "method.loss": "sce"},
    "label_smoothing": {**ONE_NET_CE, "method.loss": "label_smoothing"},
    "mixup": {**ONE_NET_CE, "method.mixup": "mixup"},
    "afm": {**ONE_NET_CE, "method.mixup": "afm"},
    "cleanlab": None,  # 5-fold out-of-fold probabilities -> find_label_issues -> retrain
    "coteaching": {
        "method.selection": "coteaching",
        "method.ssl": "none",
        "method.correction": "none",
    },
    "aum": {"method.selection": "aum", "method.ssl": "none", "method.correction": "none"},
    "curriculum": {
        **ONE_NET_CE,
        "method.selection": "curriculum",
    },
    "selflearning": {**ONE_NET_CE, "method.correction": "prototype"},
    "fixmatch": {"method.ssl": "fixmatch", "method.correction": "none"},
    "dividemix": {"method.correction": "none"},
    "noisyflow": {},  # the defaults of params.yaml: DivideMix, then the prototype vote
    # combinations
    "dividemix+gce": {"method.correction": "none", "method.loss": "gce"},
    "dividemix+selflearning": {"method.correction": "prototype"},  # the defaults until 2026-12-04
    "aum+mixmatch": {"method.selection": "aum", "method.correction": "none"},
    "coteaching+selflearning": {
        "method.selection": "coteaching",
        "method.ssl": "none",
        "method.correction": "prototype",
    },
    "fixmatch+selflearning": {"method.ssl": "fixmatch", "method.correction": "prototype"},
}
COST = {
    "cleanlab": 6,
    "noisyflow": 5,
    "dividemix+selflearning": 5,
    "fixmatch": 4,
}  # relative run time, for scheduling


def split_budget(params: Any, budget: int) -> dict[str, int]:
    """warmup + train (+ self-learning rounds x epochs) = budget."""
    from noisyflow.methods import CORRECTIONS

    extra = 0
    if CORRECTIONS.get(params.method.correction).obj.trains:
        p = params.chosen("correction")
        extra = p.rounds * p.epochs
    warm = min(params.warmup.epochs, budget - extra - 1)
    return {"warmup.epochs": warm, "train.epochs": budget - extra - warm}


def setting_params(
    suite: str, setting: str, seed: int, method: str, extra: dict, budget: int | None = None
) -> Any:
    from noisyflow.config import load_params, with_overrides

    spec = SUITES[suite]
    over = {**spec["data"], **spec["settings"][setting], "data.noise.seed": seed, "seed": seed}
    if setting.startswith("asym"):  # DivideMix's recipe for pair noise (Table 7, issue #15)
        over.update({"warmup.penalty": 1.0, "ssl.mixmatch.lambda_u": 0.0})
    rate = over.get("data.noise.rate", 0.0)
    over["selection.coteaching.forget_rate"] = min(rate, 0.9)  # co-teaching's tau = noise rate
    over.update(ONE_NET_CE if METHODS[method] is None else METHODS[method])
    over.update(extra)
    params = with_overrides(load_params(REPO / "params.yaml"), over)
    split = split_budget(params, spec["budget"] if budget is None else budget)
    return with_overrides(params, {**split, **extra})


@dataclass(frozen=True)
class Options:
    """Per-run diagnosis options (what the worker records beside the figures)."""

    curves: bool = False
    evidence_dir: Path | None = None
    budget: int | None = None  # epochs per method; None: the suite's


def run_one(job: tuple[str, str, int, str, dict, Options]) -> dict:
    """One (suite, setting, seed, method) cell, in a worker process."""
    suite, setting, seed, method, extra, opts = job
    import torch

    torch.set_num_threads(int(os.environ.get("NOISYFLOW_THREADS", "1")))
    from noisyflow.data.prepare import prepare_dataset
    from noisyflow.train.runtime import Runtime

    params = setting_params(suite, setting, seed, method, extra, opts.budget)
    runtime = Runtime.from_params(params.runtime)
    cache = REPO / "benchmarks" / "results" / "cache"
    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare_dataset(params.data, Path(tmp) / "prepared", cache_dir=cache)
        start = time.perf_counter()
        if METHODS[method] is None:
            out = BASELINES[method](params, prepared, runtime)
        else:
            name = f"{suite}-{setting}-seed{seed}-{method}"
            out = _pipeline(params, prepared, runtime, opts, name)
    out.update(
        suite=suite,
        setting=setting,
        seed=seed,
        method=method,
        set=extra,
        wall_s=round(time.perf_counter() - start, 1),
        realised_noise=prepared.meta["noise"]["realised_rate"],
        epochs=params.warmup.epochs + params.train.epochs,
    )
    return out


CURVE_KEYS = ("test_accuracy", "loss_net1", "loss_net2", "loss", "labelled_frac_net1")


def _pipeline(params: Any, prepared: Any, runtime: Any, opts: Options, name: str) -> dict:
    from noisyflow import recipes

    curve: list[dict] = []

    def on_epoch_end(phase: str, epoch: int, stats: dict[str, float]) -> None:
        kept = {k: round(v, 5) for k, v in stats.items() if k in CURVE_KEYS}
        curve.append({"phase": phase, "epoch": epoch, **kept})

    res = recipes.run_pipeline(
        params,
        prepared,
        runtime,
        monitor=("test",) if opts.curves else (),
        on_epoch_end=on_epoch_end if opts.curves else None,
    )
    m = res.evaluation.metrics
    keys = (
        "test_accuracy",
        "detection_f1",
        "detection_auroc",
        "correction_accuracy",
        "given_label_accuracy",
        "estimated_noise_rate",
    )
    out = {k: m[k] for k in keys if k in m}
    if opts.curves:
        out["curve"] = curve
    if opts.evidence_dir is not None and prepared.true_labels is not None:  # replay needs truth
        path = opts.evidence_dir / f"{name}.npz"
        np.savez(path, **res.evidence.arrays(), true_labels=prepared.true_labels)
        out["evidence"] = str(path)
    return out


def replay(files: list[Path], overrides: dict[str, Any]) -> str:
    """The label-issue decision again on saved evidence, under params.yaml's `correct:` with
    `overrides`: detection F1, share flagged, label accuracy given -> corrected, per file."""
    from noisyflow.config import load_params, with_overrides
    from noisyflow.methods.correction.decide import Evidence
    from noisyflow.metrics import detection_scores

    p = with_overrides(load_params(REPO / "params.yaml"), overrides).correct
    lines = [
        "| evidence | detection F1 % | flagged % | label accuracy given -> corrected % |",
        "|---|---|---|---|",
    ]
    for f in files:
        with np.load(f, allow_pickle=False) as arrays:
            ev, truth = Evidence.from_arrays(arrays), np.asarray(arrays["true_labels"])
        fix, known = ev.decide(p), truth >= 0  # scored on the rows whose truth is known
        given, truth = ev.labels[known], truth[known]
        f1 = detection_scores(fix.is_label_issue[known], given != truth)["f1"]
        given, corrected = (given == truth).mean(), (fix.corrected_label[known] == truth).mean()
        lines.append(
            f"| {f.stem} | {100 * f1:.1f} | {100 * fix.is_label_issue.mean():.1f} | "
            f"{100 * given:.1f} -> {100 * corrected:.1f} |"
        )
    return "\n".join(lines) + f"\n\ncorrect: {p}"


def _ce_on(params: Any, prepared: Any, runtime: Any, labels: np.ndarray, keep: np.ndarray):
    from noisyflow.baselines import accuracy_on_test, fit_ce, subset

    rows = np.flatnonzero(keep)
    epochs = params.warmup.epochs + params.train.epochs
    net = fit_ce(params, subset(prepared, rows, labels), runtime, epochs=epochs, seed=params.seed)
    return {"test_accuracy": accuracy_on_test(net, prepared, runtime)}


def method_clean(params, prepared, runtime) -> dict:
    truth = prepared.true_labels
    return _ce_on(params, prepared, runtime, truth, np.ones(len(truth), bool))


def method_oracle(params, prepared, runtime) -> dict:
    return _ce_on(params, prepared, runtime, prepared.labels, ~prepared.noise_mask)


def method_cleanlab(params, prepared, runtime) -> dict:
    from cleanlab.filter import find_label_issues

    from noisyflow.baselines import out_of_fold_probs
    from noisyflow.metrics import detection_scores

    epochs = params.warmup.epochs + params.train.epochs
    probs = out_of_fold_probs(params, prepared, runtime, epochs=epochs, seed=params.seed)
    issues = find_label_issues(prepared.labels, probs)
    out = _ce_on(params, prepared, runtime, prepared.labels, ~issues)
    out["detection_f1"] = detection_scores(issues, prepared.noise_mask)["f1"]
    return out


BASELINES = {"clean": method_clean, "oracle": method_oracle, "cleanlab": method_cleanlab}


def label(method: str, extra: dict[str, Any]) -> str:
    """A table row's name: the method, then the run's `--set` overrides, so that rows measured
    under other settings are neither averaged with the method's own nor taken for them."""
    shown = {k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()}
    return method + "".join(f" {k}={v}" for k, v in sorted(shown.items()))


def read_rows(*files: Path) -> list[dict]:
    """The JSON rows of earlier runs' --out files."""
    return [json.loads(x) for f in files for x in f.read_text().splitlines() if x.strip()]


def row_label(row: dict) -> str:
    return label(row["method"], row.get("set", {}))


def summarise(rows: list[dict], columns: list[tuple[str, str]], methods: list[str]) -> str:
    def cell(vals: list[float]) -> str:
        if not vals:
            return "-"
        arr = 100 * np.asarray(vals)
        return f"{arr.mean():.1f} ± {arr.std():.1f}"

    names = [f"{su}/{se}" for su, se in columns]
    head = "| method | " + " | ".join(f"{n} acc" for n in names)
    head += " | " + " | ".join(f"{n} F1" for n in names) + " | s/run |"
    lines = [head, "|" + "---|" * (2 * len(columns) + 2)]
    labelled = [(row_label(r), r) for r in rows]
    order = [n for m in methods for n in dict.fromkeys(n for n, r in labelled if r["method"] == m)]
    for name in order:
        sel = [r for n, r in labelled if n == name]
        accs, f1s = [], []
        for su, se in columns:
            here = [r for r in sel if r["suite"] == su and r["setting"] == se]
            accs.append(cell([r["test_accuracy"] for r in here]))
            f1s.append(cell([r["detection_f1"] for r in here if "detection_f1" in r]))
        wall = np.mean([r["wall_s"] for r in sel])
        lines.append(f"| {name} | " + " | ".join(accs + f1s) + f" | {wall:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--suite", nargs="+", default=list(SUITES), choices=list(SUITES))
    ap.add_argument("--settings", nargs="+", default=None, help="default: all of the suite")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[3, 4, 5])
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (1 torch thread each)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "methods.jsonl")
    again = ap.add_mutually_exclusive_group()
    again.add_argument(
        "--resume", action="store_true", help="add to --out, skipping the cells it already holds"
    )
    again.add_argument("--overwrite", action="store_true", help="start --out afresh")
    ap.add_argument("--list", action="store_true", help="print the methods and exit")
    ap.add_argument("--budget", type=int, help="epochs per method (default: the suite's)")
    ap.add_argument("--curves", action="store_true", help="per-epoch test curve in each row")
    ap.add_argument("--save-evidence", type=Path, metavar="DIR", help="keep the decision's input")
    ap.add_argument(
        "--replay", nargs="+", type=Path, metavar="NPZ", help="re-decide saved evidence (--set)"
    )
    ap.add_argument(
        "--table", nargs="+", type=Path, metavar="JSONL", help="print the table of earlier runs"
    )
    args = ap.parse_args()
    if args.table:
        rows = read_rows(*args.table)
        seen = {(r["suite"], r["setting"]) for r in rows}
        cols = [(su, se) for su in SUITES for se in SUITES[su]["settings"] if (su, se) in seen]
        names = [m for m in METHODS if any(r["method"] == m for r in rows)]
        print(summarise(rows, cols, names))
        return
    if args.replay:
        from noisyflow.config import parse_assignments

        print(replay(args.replay, parse_assignments(args.set)))
        return
    if args.list:
        for name, over in METHODS.items():
            print(f"{name:26s} {over if over is not None else '(baseline outside the pipeline)'}")
        return
    from noisyflow.config import parse_assignments

    extra = parse_assignments(args.set)
    columns = [
        (su, se)
        for su in args.suite
        for se in SUITES[su]["settings"]
        if args.settings is None or se in args.settings
    ]
    held = args.out.is_file() and args.out.stat().st_size > 0
    if held and not (args.resume or args.overwrite):
        ap.error(
            f"{args.out} already holds results: pass --resume to add to it, "
            "--overwrite to start it afresh, or another --out"
        )  # exit code 2, the file untouched
    opts = Options(args.curves, args.save_evidence, args.budget)
    if opts.evidence_dir is not None:
        opts.evidence_dir.mkdir(parents=True, exist_ok=True)
    jobs = [
        (su, se, seed, m, extra, opts)
        for su, se in columns
        for seed in args.seeds
        for m in args.methods
    ]
    rows: list[dict] = []
    if held and args.resume:
        rows = read_rows(args.out)
        done = {(r["suite"], r["setting"], r["seed"], row_label(r)) for r in rows}
        jobs = [j for j in jobs if (*j[:3], label(j[3], extra)) not in done]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        args.out.write_text("")
    jobs.sort(key=lambda j: (j[0] != "cifar", -COST.get(j[3], 1)))
    start = time.perf_counter()
    with ProcessPoolExecutor(max(args.jobs, 1)) as pool:
        futures = {pool.submit(run_one, j): j for j in jobs}
        for future in as_completed(futures):
            row = future.result()
            rows.append(row)
            with open(args.out, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(
                f"{row['suite']}/{row['setting']} seed {row['seed']} {row['method']}: "
                f"acc {row['test_accuracy']:.4f} F1 {row.get('detection_f1', float('nan')):.3f} "
                f"({row['wall_s']:.0f} s)",
                flush=True,
            )
    print()
    print(summarise(rows, columns, args.methods))
    print(f"\n{len(jobs)} runs in {time.perf_counter() - start:.0f} s (jobs={args.jobs}); {extra}")


if __name__ == "__main__":
    main()
