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
from noisyflow.config import load_params, with_overrides

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    over = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    params = with_overrides(load_params(REPO / "params.yaml"), over)
    device = torch.device(args.device)
    prepared = recipes.prepare(params.data)
    t0 = time.perf_counter()
    _, nets, _ = recipes.warmup(params, prepared, device)
    t1 = time.perf_counter()
    first = recipes.divide(nets, prepared, params.codivide, params.seed, device)
    nets, final, _ = recipes.train(params, prepared, nets, first, device)
    t2 = time.perf_counter()
    corr = recipes.correct(
        params.correct,
        prepared,
        nets,
        final,
        params.codivide.p_threshold,
        use_prototypes=True,
        seed=params.seed,
        device=device,
    )
    metrics = recipes.evaluate(prepared, nets, corr, device).metrics
    print(
        json.dumps(
            {
                "device": str(device),
                "torch": torch.__version__,
                "warmup_s_per_epoch": (t1 - t0) / max(params.warmup.epochs, 1),
                "train_s_per_epoch": (t2 - t1) / max(params.train.epochs, 1),
                **{k: round(v, 4) for k, v in metrics.items()},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
