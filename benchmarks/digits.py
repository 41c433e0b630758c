"""Digits benchmark: noisyflow (DivideMix + prototype correction) against plain CE, confident
learning (cleanlab: 5-fold out-of-fold probabilities, find_label_issues, retrain), training on
the truly clean samples only (oracle) and on clean labels (ceiling).

Protocol: stratified split with seed 0 into 1,297 train / 500 test; symmetric noise replaces a
label by one of the other 9 classes; asymmetric noise flips 1<->7, 3<->8, 5<->6, 4<->9 at 40%;
noise and network seeds 0, 1, 2; mean +- std. Every method gets the same network and the same
epoch budget (warmup.epochs + train.epochs). Prints a table and writes JSON with the params.

    python benchmarks/digits.py                      # everything (about 30 min on 2 cores)
    python benchmarks/digits.py --jobs 8             # parallel processes (1 torch thread each)
    python benchmarks/digits.py --settings sym-40 --methods noisyflow --seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from noisyflow.config import parse_assignments

SETTINGS = {
    "sym-40": {"data.noise.type": "symmetric", "data.noise.rate": 0.4},
    "sym-60": {"data.noise.type": "symmetric", "data.noise.rate": 0.6},
    # DivideMix's own asymmetric recipe (paper Table 7, issues #15/#26): confidence penalty in
    # warm-up, lambda_u = 0; plus a shorter warm-up so the flipped pairs are not memorised.
    "asym-40": {
        "data.noise.type": "asymmetric",
        "data.noise.rate": 0.4,
        "warmup.penalty": 1.0,
        "warmup.epochs": 5,
        "train.lambda_u": 0.0,
    },
}
BASELINE_EPOCHS = 40  # CE-trained baselines: the default warmup.epochs + train.epochs
METHODS = ("clean", "ce", "cleanlab", "oracle", "noisyflow")
REPO = Path(__file__).resolve().parents[1]
COST = {"noisyflow": 10, "cleanlab": 6, "clean": 1, "ce": 1, "oracle": 1}  # relative run time


def run_one(job: tuple[str, int, str, dict, str]) -> dict:
    """One (setting, seed, method, overrides, label) cell; runs in a worker process."""
    setting, seed, method, extra, label = job
    import torch

    torch.set_num_threads(int(os.environ.get("NOISYFLOW_THREADS", "1")))
    from noisyflow import recipes
    from noisyflow.config import load_params, with_overrides

    over = {**SETTINGS[setting], "data.noise.seed": seed, "seed": seed, **extra}
    params = with_overrides(load_params(REPO / "params.yaml"), over)
    device = torch.device(params.runtime.device if params.runtime.device != "auto" else "cpu")
    prepared = recipes.prepare(params.data)
    start = time.perf_counter()
    result = METHOD_FNS[method](params, prepared, device)
    result.update(setting=setting, seed=seed, method=label, wall_s=time.perf_counter() - start)
    return result


def _fit_kwargs(params, device) -> dict:
    w = params.warmup
    return {
        "epochs": BASELINE_EPOCHS,
        "lr": w.lr,
        "batch_size": w.batch_size,
        "weight_decay": w.weight_decay,
        "shift": params.augment.shift,
        "device": device,
    }


def _test_acc(net, prepared, device) -> float:
    from noisyflow.engine import predict

    from noisyflow.data import to_tensor

    pred = predict(net, to_tensor(prepared.x_test, device)).argmax(1).numpy()
    return float((pred == prepared.y_test).mean())


def _ce_on(params, prepared, device, labels, keep=None) -> dict:
    from noisyflow.baselines import fit_ce

    keep = np.ones(len(labels), bool) if keep is None else keep
    config = recipes_config(params, prepared)
    net = fit_ce(
        prepared.x_train[keep],
        labels[keep],
        config,
        seed=params.seed,
        **_fit_kwargs(params, device),
    )
    return {"test_accuracy": _test_acc(net, prepared, device)}


def recipes_config(params, prepared):
    from noisyflow import recipes

    return recipes.model_config(params, prepared.x_train.shape, prepared.num_classes)


def method_clean(params, prepared, device) -> dict:
    return _ce_on(params, prepared, device, prepared.true_labels)


def method_ce(params, prepared, device) -> dict:
    return _ce_on(params, prepared, device, prepared.labels)


def method_oracle(params, prepared, device) -> dict:
    return _ce_on(params, prepared, device, prepared.labels, keep=~prepared.noise_mask)


def method_cleanlab(params, prepared, device) -> dict:
    from cleanlab.filter import find_label_issues

    from noisyflow.baselines import out_of_fold_probs
    from noisyflow.metrics import detection_scores

    probs = out_of_fold_probs(
        prepared.x_train,
        prepared.labels,
        recipes_config(params, prepared),
        seed=params.seed,
        **_fit_kwargs(params, device),
    )
    issues = find_label_issues(prepared.labels, probs)
    out = _ce_on(params, prepared, device, prepared.labels, keep=~issues)
    out["detection_f1"] = detection_scores(issues, prepared.noise_mask)["f1"]
    return out


def method_noisyflow(params, prepared, device) -> dict:
    from noisyflow import recipes

    metrics = recipes.run_pipeline(params, prepared, device).evaluation.metrics
    keys = ("test_accuracy", "detection_f1", "detection_auroc", "correction_accuracy")
    return {k: metrics[k] for k in keys}


METHOD_FNS = {
    "clean": method_clean,
    "ce": method_ce,
    "cleanlab": method_cleanlab,
    "oracle": method_oracle,
    "noisyflow": method_noisyflow,
}


def summarise(rows: list[dict], settings: list[str], methods: list[str]) -> str:
    def cell(vals: list[float], scale: float = 100.0) -> str:
        if not vals:
            return "-"
        arr = np.asarray(vals) * scale
        return f"{arr.mean():.1f} ± {arr.std():.1f}"

    head = "| method | " + " | ".join(f"{s} acc" for s in settings) + " | "
    head += " | ".join(f"{s} F1" for s in settings) + " | wall s/run |"
    lines = [head, "|" + "---|" * (2 * len(settings) + 2)]
    for m in methods:
        sel = [r for r in rows if r["method"] == m]
        accs = [cell([r["test_accuracy"] for r in sel if r["setting"] == s]) for s in settings]
        f1s = [
            cell([r["detection_f1"] for r in sel if r["setting"] == s and "detection_f1" in r])
            for s in settings
        ]
        wall = np.mean([r["wall_s"] for r in sel]) if sel else float("nan")
        lines.append(f"| {m} | " + " | ".join(accs + f1s) + f" | {wall:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (1 torch thread each)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="params override for every run, e.g. --set train.epochs=20",
    )
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="extra configurations to compare, e.g. short:warmup.epochs=5",
    )
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "digits.json")
    args = ap.parse_args()
    extra = parse_assignments(args.set)
    variants = {"": {}} if not args.variant else {}
    for spec in args.variant:
        name, _, sets = spec.partition(":")
        variants[name] = parse_assignments(sets.split(",") if sets else [])
    jobs = [
        (s, seed, m, {**extra, **v}, f"{m}[{name}]" if name else m)
        for s in args.settings
        for seed in args.seeds
        for m in args.methods
        for name, v in variants.items()
    ]
    jobs.sort(key=lambda j: COST[j[2]], reverse=True)  # longest first keeps a process pool busy
    start = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_suffix(".jsonl")  # one line per finished run, survives a kill
    partial.write_text("")
    rows = []
    with ProcessPoolExecutor(max(args.jobs, 1)) as pool:
        for future in as_completed([pool.submit(run_one, j) for j in jobs]):
            rows.append(future.result())
            with open(partial, "a") as fh:
                fh.write(json.dumps(rows[-1]) + "\n")
    labels = list(dict.fromkeys(j[4] for j in sorted(jobs, key=lambda j: args.methods.index(j[2]))))
    table = summarise(rows, args.settings, labels)
    print(table)
    print(
        f"\n{len(jobs)} runs in {time.perf_counter() - start:.0f} s (jobs={args.jobs}); overrides: {extra}"
    )
    args.out.write_text(
        json.dumps(
            {
                "rows": rows,
                "table": table,
                "overrides": extra,
                "params": (REPO / "params.yaml").read_text(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
