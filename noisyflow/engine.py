"""The one training loop (epochs -> batches -> step function) and the one inference path.

Stages differ only in the step/epoch functions they plug in (warm-up CE, DivideMix); device
moves, optimisation, LR schedule, progress bar and per-epoch callbacks live here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

StepFn = Callable[[Any], tuple[torch.Tensor, dict[str, float]]]
EpochFn = Callable[[int], dict[str, float]]


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; anything else is passed to torch.device."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def configure_threads(threads: int) -> int:
    """Set torch's intra-op threads (0 = min(cores, 4); env NOISYFLOW_THREADS wins)."""
    env = os.environ.get("NOISYFLOW_THREADS")
    n = int(env) if env else threads
    if n <= 0:
        n = min(os.cpu_count() or 1, 4)
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    """Seed torch's global RNG (weight init); call once at the top of a stage."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def make_optimizer(
    model: nn.Module, *, lr: float, momentum: float, weight_decay: float
) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def cosine_lr(base_lr: float, epoch: int, total_epochs: int, floor: float = 0.01) -> float:
    """Cosine decay from base_lr to floor*base_lr over total_epochs."""
    t = min(epoch / max(total_epochs, 1), 1.0)
    return base_lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def minibatches(
    indices: torch.Tensor, batch_size: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """Shuffle `indices` (1-D) with the generator and cut into batches (last may be smaller)."""
    perm = indices[torch.randperm(len(indices), generator=generator)]
    return list(torch.split(perm, batch_size))


def optimize(
    model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[Any], step_fn: StepFn
) -> dict[str, float]:
    """One pass: for each batch, loss = step_fn(batch); backward; step. Returns mean stats."""
    model.train()
    totals: dict[str, float] = {}
    count = 0
    for batch in batches:
        loss, stats = step_fn(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for key, value in stats.items():
            totals[key] = totals.get(key, 0.0) + float(value)
        count += 1
    return {k: v / count for k, v in totals.items()} if count else {}


def run_epochs(
    epochs: int,
    epoch_fn: EpochFn,
    *,
    start_epoch: int = 0,
    desc: str = "train",
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Run epoch_fn for each epoch with a progress bar; returns the per-epoch stats history."""
    history = []
    bar = tqdm(
        range(start_epoch, epochs), desc=desc, unit="epoch", dynamic_ncols=True, disable=None
    )
    for epoch in bar:
        stats = epoch_fn(epoch)
        history.append({"epoch": epoch, **stats})
        bar.set_postfix({k: f"{v:.3g}" for k, v in stats.items() if k in _SHOWN})
        if on_epoch_end is not None:
            on_epoch_end(epoch, stats)
    return history


_SHOWN = {"loss", "loss_net1", "loss_net2", "labelled_frac", "test_accuracy"}


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024, features: bool = False
) -> torch.Tensor:
    """Eval-mode logits (N, K) or penultimate features (N, D) for a (N, C, H, W) tensor, on CPU."""
    model.eval()
    fn = model.features if features else model
    outs = [fn(chunk).float().cpu() for chunk in torch.split(x, batch_size)]
    return torch.cat(outs) if outs else torch.empty(0)


@torch.no_grad()
def predict_ensemble(models: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Sum of the models' logits (DivideMix's test-time ensemble); (N, K)."""
    return torch.stack([predict(m, x) for m in models]).sum(dim=0)
