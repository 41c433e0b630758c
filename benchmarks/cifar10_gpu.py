"""CIFAR-10 on one GPU: the whole pipeline with the `fast` preset against cross-entropy with the
same network and budget, and the `reference` preset's seconds per epoch; prints one table.

Runs on a bare GPU machine with only torch, numpy, scikit-learn, Pillow and PyYAML: it calls
the library directly (no DVC, MLflow or Prefect).

    python benchmarks/cifar10_gpu.py --data cifar10-jpeg.npz             # on a GPU, < 10 min
    python benchmarks/cifar10_gpu.py --data cifar10-jpeg.npz --smoke     # CPU, tiny, < 3 min
    python benchmarks/cifar10_gpu.py --data ... --labels noisy.npy       # your annotators' labels

Rows: (a) cross-entropy with the fast network and budget on clean labels (the ceiling) and on
symmetric-50% labels (the floor); (b) the fast pipeline at symmetric 50% and 80% (DivideMix
convention: redrawn from all classes) and asymmetric 40% (the CIFAR-10 map), or on the
`--labels` file; (c) the reference preset (DivideMix's PreAct ResNet-18 recipe) for a few
epochs, for its seconds per epoch. Columns: test accuracy (best over epochs and last), label
issue detection F1 / AUROC, seconds per stage and in total, training images per second, peak
GPU memory, device.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from packs import CIFAR_PACK as PACK
from packs import REPO

SETTINGS = {
    "sym-50": {"data.noise.type": "symmetric", "data.noise.rate": 0.5},
    "sym-80": {"data.noise.type": "symmetric", "data.noise.rate": 0.8},
    "asym-40": {
        "data.noise.type": "asymmetric",
        "data.noise.rate": 0.4,
        "data.noise.map": "cifar10",
        "ssl.mixmatch.lambda_u": 0.0,  # DivideMix's asymmetric recipe
        "warmup.penalty": 1.0,
    },
}
CE = {
    "method.networks": 1,
    "method.selection": "none",
    "method.ssl": "none",
    "method.correction": "none",
    "method.loss": "ce",
}


def build(args: argparse.Namespace, preset: str, over: dict[str, Any]) -> Any:
    from noisyflow.config import parse_params, with_overrides
    from noisyflow.config.presets import with_preset

    base = {
        "data.source": "cifar10",
        "data.path": str(args.data),
        "data.noise.include_true_class": True,
        "data.noise.seed": args.seed,
        "seed": args.seed,
        "tracking.enabled": False,
        "runtime.device": "cpu" if args.smoke else "auto",
    }
    if args.smoke:
        base.update(
            {
                "data.subset": 600,
                "model.width": 8,
                "warmup.epochs": 1,
                "train.epochs": 1,
                "warmup.batch_size": 64,
                "train.batch_size": 64,
            }
        )
    params = with_preset(parse_params({}), preset)
    params = with_overrides(params, base)
    if args.labels:
        over = {
            **{k: v for k, v in over.items() if not k.startswith("data.noise")},
            "data.noise.type": "none",
            "data.labels_path": str(args.labels),
        }
    return with_overrides(params, over)


def run(
    name: str, params: Any, cache: Path, *, epochs_only: bool = False, test_limit: int = 0
) -> dict[str, Any]:
    import numpy as np
    import torch

    from noisyflow import recipes
    from noisyflow.data.prepare import prepare_dataset
    from noisyflow.train.runtime import Runtime
    from noisyflow.types import Split

    runtime = Runtime.from_params(params.runtime)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        prepared = prepare_dataset(params.data, Path(tmp) / "prepared", cache_dir=cache)
        if test_limit:  # --smoke: score on an evenly spaced part of the test set (the pack's
            t = prepared.test  # test images are grouped by class)
            rows = np.linspace(0, len(t) - 1, test_limit).astype(int)
            prepared.test = Split(np.array(t.x[rows]), t.labels[rows], t.index[rows])
        t_prep = time.perf_counter() - t0
        if runtime.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        marks: dict[str, float] = {}
        start = time.perf_counter()

        def mark(phase: str) -> None:
            if runtime.device.type == "cuda":
                torch.cuda.synchronize()
            marks[phase] = time.perf_counter() - start

        if epochs_only:  # the reference preset: its warm-up and training epochs, timed
            w = recipes.warmup(params, prepared, runtime, monitor=())
            mark("warmup")
            first = recipes.divide(params, prepared, w.nets, runtime)
            mark("codivide")
            recipes.train(params, prepared, w.nets, first, runtime, monitor=())
            mark("train")
            result, history = None, []
        else:
            res = recipes.run_pipeline(params, prepared, runtime, on_phase=mark)
            result, history = res.evaluation.metrics, res.history
    ends = list(marks.values())
    stages = {k: end - begin for k, begin, end in zip(marks, [0.0, *ends], ends, strict=False)}
    epochs = params.warmup.epochs + params.train.epochs
    images = len(prepared.train) * epochs
    row: dict[str, Any] = {
        "run": name,
        "prepare_s": round(t_prep, 1),
        "stages_s": {k: round(v, 1) for k, v in stages.items()},
        "total_s": round(sum(stages.values()), 1),
        "train_images_per_s": round(images / max(sum(stages.values()), 1e-9)),
        "warmup_s_per_epoch": round(stages["warmup"] / params.warmup.epochs, 2),
        "train_s_per_epoch": round(stages.get("train", float("nan")) / params.train.epochs, 2),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if runtime.device.type == "cuda"
        else None,
        "device": torch.cuda.get_device_name() if runtime.device.type == "cuda" else "cpu",
    }
    if result is not None:
        curve = [h["test_accuracy"] for h in history if "test_accuracy" in h]
        row.update(
            test_accuracy_last=result["test_accuracy"],
            test_accuracy_best=max([*curve, result["test_accuracy"]]),
            detection_f1=result.get("detection_f1"),
            detection_auroc=result.get("detection_auroc"),
        )
    return row


def table(rows: list[dict[str, Any]]) -> str:
    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.2f}"

    head = (
        "| run | acc best | acc last | det F1 | det AUROC | s/epoch warm-up / train | "
        "total s | img/s | peak GiB | device |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['run']} | {pct(r.get('test_accuracy_best'))} | "
            f"{pct(r.get('test_accuracy_last'))} | {pct(r.get('detection_f1'))} | "
            f"{pct(r.get('detection_auroc'))} | {r['warmup_s_per_epoch']} / "
            f"{r['train_s_per_epoch']} | {r['total_s']} | {r['train_images_per_s']} | "
            f"{r['peak_gpu_gib'] if r['peak_gpu_gib'] is not None else '-'} | {r['device']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=PACK)
    ap.add_argument("--labels", type=Path, help=".npy of 50,000 labels replacing injected noise")
    ap.add_argument("--smoke", action="store_true", help="CPU, a 600-image subset, 1+1 epochs")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--reference-epochs", type=int, default=2, help="epochs of each phase timed")
    ap.add_argument("--skip-ce", action="store_true")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gpu.json")
    args = ap.parse_args()
    cache = Path(tempfile.gettempdir()) / "noisyflow-cache"
    rows: list[dict[str, Any]] = []

    limit = 1000 if args.smoke else 0

    def record(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)

    if not args.skip_ce:
        clean = build(args, "fast", {**CE, "data.noise.type": "none"})
        record(run("ce clean", clean, cache, test_limit=limit))
        noisy = build(args, "fast", {**CE, **SETTINGS["sym-50"]})
        record(run("ce sym-50", noisy, cache, test_limit=limit))
    for setting in ["labels"] if args.labels else args.settings:
        over = {} if args.labels else SETTINGS[setting]
        record(run(f"fast {setting}", build(args, "fast", over), cache, test_limit=limit))
    ref = build(args, "reference", SETTINGS["sym-50"])
    n = args.reference_epochs
    ref = replace(ref, warmup=replace(ref.warmup, epochs=n), train=replace(ref.train, epochs=n))
    record(run(f"reference ({n}+{n} epochs)", ref, cache, epochs_only=True, test_limit=limit))
    print()
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
