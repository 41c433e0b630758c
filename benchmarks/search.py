"""Search benchmark: does `noisyflow search` find a combination that beats the default params
on seeds the search never saw, and does its objective rank trials like the truth does?

Per setting (data + noise):
1. `noisyflow search` (the real CLI path: Optuna, pruning, MLflow in the results folder) with
   network seed 0 and noise seed 0, scored on the noisy validation split only; the true test
   accuracy of every complete trial is logged beside the objective (it never steers the search)
   and their Spearman / Kendall rank correlation reported.
2. The best trial's overrides and the default params, each trained on the evaluation seeds
   (network seed = noise seed = s, default 1 2 3: neither was used by the search), all
   training images (no validation split held out), scored by test accuracy on clean labels.

    python benchmarks/search.py --quick                        # one tiny setting, minutes
    python benchmarks/search.py --settings digits-sym-60 --trials 30 --jobs 4
    python benchmarks/search.py --settings cifar5k-inst-40 --cifar /path/cifar10-jpeg.npz \
        --trials 40 --workers 2 -S train.epochs=20

Prints one table (setting, trials, search wall time, best objective, rank correlations, default
vs searched test accuracy over the evaluation seeds) and writes JSON next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from packs import CIFAR_PACK, REPO

sys.path.insert(0, str(REPO))

SETTINGS: dict[str, dict[str, Any]] = {
    "digits-sym-60": {"data.noise.type": "symmetric", "data.noise.rate": 0.6},
    "digits-asym-40": {"data.noise.type": "asymmetric", "data.noise.rate": 0.4},
    "digits-inst-40": {"data.noise.type": "instance", "data.noise.rate": 0.4},
    "cifar5k-inst-40": {
        "data.source": "cifar10",
        "data.path": str(CIFAR_PACK),
        "data.subset": 5000,
        "data.noise.type": "instance",
        "data.noise.rate": 0.4,
        "augment.hflip": True,
    },
}
VAL_SIZE = {"digits": 300, "cifar10": 500}  # noisy validation images held out for the search
QUICK = {  # a tiny budget that still runs every phase
    "data.subset": 600,
    "data.test_size": 150,
    "model.width": 4,
    "warmup.epochs": 1,
    "train.epochs": 2,
    "ssl.mixmatch.rampup_epochs": 1,
    "correction.prototype.rounds": 1,
    "correction.prototype.epochs": 1,
    "correction.prototype.samples_per_class": 40,
    "correction.prototype.prototypes": 2,
}


def setting_overrides(name: str, budget: dict[str, Any], cifar: str) -> dict[str, Any]:
    over = dict(SETTINGS[name])
    if over.get("data.source") == "cifar10":
        over["data.path"] = cifar
    return {**over, **budget}


def space_without(space: Path, budget: dict[str, Any], out: Path) -> Path:
    """The space minus the keys the budget fixes (and entries conditioned on them)."""
    import yaml

    tree = yaml.safe_load(space.read_text())
    search = tree.get("search") or {}
    dropped = [k for k in search if k in budget]
    if not dropped:
        return space
    for key in dropped:
        del search[key]
    for key, spec in list(search.items()):
        if isinstance(spec, dict) and set(spec.get("when") or {}) & set(dropped):
            del search[key]
    print(f"budget fixes {', '.join(dropped)}: not searched (space written to {out})")
    out.write_text(yaml.safe_dump(tree, sort_keys=False))
    return out


def write_params(path: Path, overrides: dict[str, Any]) -> Path:
    """The repo's params.yaml with dotted overrides (checked)."""
    import yaml

    from noisyflow.config import load_params, set_dotted, with_overrides

    with_overrides(load_params(REPO / "params.yaml"), overrides)  # fail early, naming the key
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in overrides.items():
        set_dotted(tree, key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def run_search(name: str, over: dict[str, Any], args: argparse.Namespace, out: Path) -> dict:
    """`noisyflow search` on one setting; its summary."""
    import optuna

    from pipeline import search
    from pipeline.cli import main

    folder = out / name
    params = write_params(folder / "params.yaml", over)
    source = over.get("data.source", "digits")
    storage = f"sqlite:///{(folder / 'search.db').resolve()}"
    argv = [
        "search",
        "--params", str(params),
        "--space", str(args.space),
        "--trials", str(args.trials),
        "--workers", str(args.workers),
        "--storage", storage,
        "--study", f"bench-{name}",
        "--workdir", str(folder / "work"),
        "--out", str(folder),
        "--pruner", args.pruner,
        "-S", f"data.val_size={VAL_SIZE.get(source, 300)}",
    ]  # fmt: skip
    if args.seed is not None:
        argv += ["--seed", str(args.seed)]
    start = time.perf_counter()
    rc = main(argv)
    wall = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"search on {name} failed (exit {rc})")
    study = optuna.load_study(study_name=f"bench-{name}", storage=search.open_storage(storage))
    summary = search.summarize(study)
    best = summary.best
    return {
        "setting": name,
        "wall_s": wall,
        "counts": summary.counts,
        "best_trial": best.number,
        "best_objective": best.value,
        "best_true_test_accuracy": best.user_attrs.get("true_test_accuracy"),
        "best_overrides": summary.best_overrides,
        "correlation": summary.correlation,
    }


def evaluate(job: tuple[str, str, int, dict[str, Any], str]) -> dict[str, Any]:
    """Train one (setting, arm, seed) with all training images; clean test accuracy."""
    name, arm, seed, over, out = job
    import torch

    torch.set_num_threads(int(os.environ.get("NOISYFLOW_THREADS", "1")))
    from noisyflow import recipes
    from noisyflow.config import load_params, with_overrides
    from noisyflow.data.prepare import prepare_dataset
    from noisyflow.train.runtime import Runtime

    params = with_overrides(
        load_params(REPO / "params.yaml"),
        {**over, "seed": seed, "data.noise.seed": seed, "tracking.enabled": False},
    )
    folder = Path(out) / name / "eval" / f"{arm}-seed{seed}"
    prepared = prepare_dataset(
        params.data, folder / "prepared", cache_dir=REPO / ".noisyflow/cache", base=REPO
    )
    start = time.perf_counter()
    result = recipes.run_pipeline(params, prepared, Runtime.from_params(params.runtime))
    m = result.evaluation.metrics
    return {
        "setting": name,
        "arm": arm,
        "seed": seed,
        "test_accuracy": m["test_accuracy"],
        "detection_f1": m.get("detection_f1"),
        "wall_s": time.perf_counter() - start,
    }


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * sd:.1f}"


def table(searches: list[dict], evals: list[dict]) -> str:
    head = (
        "| setting | trials (complete/pruned/failed) | search wall | best objective (noisy val) "
        "| Spearman | Kendall | default test acc % | searched test acc % | Δ | searched methods |"
    )
    rows = [head, "|" + "---|" * 10]
    for s in searches:
        acc = {
            arm: [
                e["test_accuracy"]
                for e in evals
                if e["setting"] == s["setting"] and e["arm"] == arm
            ]
            for arm in ("default", "searched")
        }
        delta = (
            f"{100 * (statistics.mean(acc['searched']) - statistics.mean(acc['default'])):+.1f}"
            if acc["default"] and acc["searched"]
            else "-"
        )
        c = s["counts"]
        r = s["correlation"] or {}
        methods = " ".join(
            f"{k.split('.', 1)[1]}={v}"
            for k, v in s["best_overrides"].items()
            if k.startswith("method.")
        )
        rows.append(
            f"| {s['setting']} | {c['complete'] + c['pruned'] + c['failed']} "
            f"({c['complete']}/{c['pruned']}/{c['failed']}) | {s['wall_s']:.0f} s "
            f"| {s['best_objective']:.3f} | {r.get('spearman', float('nan')):.2f} "
            f"| {r.get('kendall', float('nan')):.2f} | {_mean_sd(acc['default'])} "
            f"| {_mean_sd(acc['searched'])} | {delta} | {methods} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    from noisyflow.config import parse_assignments

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--workers", type=int, default=1, help="search workers (Prefect flow when > 1)")
    ap.add_argument("--jobs", type=int, default=1, help="parallel evaluation processes")
    ap.add_argument("--eval-seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--space", type=Path, default=REPO / "params/search_space.yaml")
    ap.add_argument("--pruner", default="median", choices=("median", "hyperband", "none"))
    ap.add_argument("--seed", type=int, default=0, help="sampler seed")
    ap.add_argument("--cifar", default=str(CIFAR_PACK), help="the CIFAR-10 JPEG pack (cifar5k)")
    ap.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE",
                    help="budget for search and evaluation alike, e.g. train.epochs=10")  # fmt: skip
    ap.add_argument(
        "--quick", action="store_true", help="digits-sym-60, tiny budget, 3 trials, 1 seed"
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=REPO / "benchmarks/results" / time.strftime("search-%Y%m%d-%H%M%S"),
    )
    args = ap.parse_args(argv)
    budget = parse_assignments(args.set_param)
    if args.quick:
        args.settings, args.trials, args.eval_seeds = ["digits-sym-60"], 3, [1]
        budget = {**QUICK, **budget}
    args.out.mkdir(parents=True, exist_ok=True)
    args.space = space_without(args.space, budget, args.out / "search_space.yaml")
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{(args.out / 'mlflow.db').resolve()}")
    os.environ.setdefault("NOISYFLOW_THREADS", "1")

    searches = []
    for name in args.settings:
        over = setting_overrides(name, budget, args.cifar)
        searches.append(run_search(name, over, args, args.out))
    jobs = [
        (
            s["setting"],
            arm,
            seed,
            {**setting_overrides(s["setting"], budget, args.cifar), **extra},
            str(args.out),
        )
        for s in searches
        for seed in args.eval_seeds
        for arm, extra in (("default", {}), ("searched", s["best_overrides"]))
    ]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        evals = list(pool.map(evaluate, jobs))
    eval_wall = time.perf_counter() - start
    text = table(searches, evals)
    print()
    print(text)
    print(
        f"\nsearch: seed 0 / noise seed 0, objective = noisy validation accuracy; evaluation "
        f"seeds {args.eval_seeds} (network and noise), all training images, clean test labels; "
        f"evaluation wall {eval_wall:.0f} s with {args.jobs} process(es); budget {budget or 'params.yaml'}"
    )
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "budget": budget,
              "searches": searches, "evaluations": evals, "table": text}  # fmt: skip
    (args.out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"written: {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
