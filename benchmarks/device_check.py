"""Run the pipeline's recipes in-process on a given device and print time and metrics.

Checks that the tensor code is device-agnostic (CPU, CUDA, MPS) and how long an epoch takes:

    python benchmarks/device_check.py --device cuda --set train.epochs=5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from noisyflow import recipes
from noisyflow.config import load_params, parse_assignments, with_overrides

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    params = with_overrides(load_params(REPO / "params.yaml"), parse_assignments(args.set))
    device = torch.device(args.device)
    prepared = recipes.prepare(params.data)
    marks = {"start": time.perf_counter()}
    result = recipes.run_pipeline(
        params, prepared, device, on_phase=lambda name: marks.setdefault(name, time.perf_counter())
    )
    report = {
        "device": str(device),
        "torch": torch.__version__,
        "warmup_s_per_epoch": (marks["warmup"] - marks["start"]) / max(params.warmup.epochs, 1),
        "train_s_per_epoch": (marks["train"] - marks["warmup"]) / max(params.train.epochs, 1),
        **{k: round(v, 4) for k, v in result.evaluation.metrics.items()},
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
