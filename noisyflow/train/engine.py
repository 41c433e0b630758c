"""The one training loop and the one inference path, shared by every method.

`run_epochs` drives epochs (LR schedule set by the caller's epoch function, history, callbacks,
resume checkpoints); `run_pass` drives the batches of one pass: autocast, backward, optimizer
steps, and per-batch statistics accumulated *on the device* and read once at the end, so the
hot loop never waits for the host. A NaN/inf loss stops the stage with an error naming the
epoch and batch; the epoch's weights are never saved.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from noisyflow.errors import TrainingError
from noisyflow.train.data import TrainData
from noisyflow.train.runtime import Runtime
from noisyflow.train.state import Checkpointer, TrainState

try:  # a progress bar when tqdm is installed (a bare GPU machine may not have it)
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover - exercised on machines without tqdm

    def tqdm(iterable, **_):  # type: ignore[no-redef]
        return _Quiet(iterable)


class _Quiet:
    def __init__(self, iterable: Iterable) -> None:
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def set_postfix(self, *_: Any, **__: Any) -> None:
        pass


Stats = dict[str, torch.Tensor]
StepFn = Callable[[int, Any], tuple[torch.Tensor, Stats]]
EpochFn = Callable[[int], dict[str, float]]
EpochCallback = Callable[[int, dict[str, float]], None]


def cosine_lr(base_lr: float, epoch: int, total_epochs: int, floor: float = 0.01) -> float:
    """Cosine decay from base_lr (epoch 0) towards floor * base_lr (epoch = total_epochs)."""
    t = min(epoch / max(total_epochs, 1), 1.0)
    return base_lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def lr_at(cfg: object, epoch: int, epochs: int) -> float:
    """The learning rate of `epoch` under cfg's schedule (cosine to 1%, a x0.1 step after the
    `step_at` fraction of the epochs as in DivideMix, or constant)."""
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":
        return cfg.lr * (0.1 if epoch >= round(cfg.step_at * epochs) else 1.0)
    return cosine_lr(cfg.lr, epoch, epochs)


def set_lr(optimizers: Iterable[torch.optim.Optimizer], lr: float) -> None:
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = lr


class FiniteGuard:
    """Remembers (on the device) the first batch whose loss was not finite."""

    def __init__(self, device: torch.device) -> None:
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)

    def observe(self, loss: torch.Tensor, batch: int) -> None:
        bad = ~torch.isfinite(loss.detach())
        self.first_bad = torch.where((self.first_bad < 0) & bad, batch, self.first_bad)

    def check(self, where: str) -> None:
        batch = int(self.first_bad)
        if batch >= 0:
            raise TrainingError(
                f"{where}, batch {batch}: the loss is NaN or infinite; the model is not saved "
                "(lower the learning rate or check the inputs)"
            )


def run_pass(
    batches: Iterable[Any],
    step: StepFn,
    optimizers: Sequence[torch.optim.Optimizer],
    *,
    train: Sequence[nn.Module],
    runtime: Runtime,
    where: str,
    after_step: Callable[[], None] | None = None,
) -> dict[str, float]:
    """One pass: per batch, loss = step(i, batch); backward; step every optimizer; after_step()
    (weight averaging).

    `train` are put in train mode (other networks keep their mode, e.g. a peer in eval mode).
    Returns the mean of each statistic over the batches (one device->host read).
    """
    for module in train:
        module.train()
    guard = FiniteGuard(runtime.device)
    totals: Stats = {}
    count = 0
    for i, batch in enumerate(batches):
        with runtime.autocast():
            loss, stats = step(i, batch)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()
        if after_step is not None:
            after_step()
        guard.observe(loss, i)
        for key, value in stats.items():
            value = value.detach().float()
            totals[key] = totals[key] + value if key in totals else value
        count += 1
    guard.check(where)
    if not count or not totals:
        return {}
    keys = list(totals)
    means = (torch.stack([totals[k] for k in keys]) / count).tolist()
    return dict(zip(keys, means, strict=True))


def run_epochs(
    state: TrainState,
    epochs: int,
    epoch_fn: EpochFn,
    *,
    desc: str,
    checkpointer: Checkpointer | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> list[dict[str, float]]:
    """Run epoch_fn for epochs state.epoch .. epochs-1; record history; checkpoint each epoch.

    Returns the whole history (including epochs restored from a checkpoint).
    """
    bar = tqdm(
        range(state.epoch, epochs), desc=desc, unit="epoch", dynamic_ncols=True, disable=None
    )
    for epoch in bar:
        stats = epoch_fn(epoch)
        state.history.append({"epoch": epoch, **stats})
        state.epoch = epoch + 1
        bar.set_postfix({k: f"{v:.3g}" for k, v in stats.items() if k in _SHOWN})
        if on_epoch_end is not None:
            on_epoch_end(epoch, stats)
        if checkpointer is not None:
            checkpointer.save(state, epochs=epochs)
    return state.history


_SHOWN = {"loss_net1", "loss_net2", "labelled_frac_net1", "test_accuracy"}


@torch.no_grad()
def infer(
    net: nn.Module,
    data: TrainData,
    *,
    runtime: Runtime,
    batch_size: int = 1024,
    tta: str = "none",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode (logits (N, K), features (N, D)) of every sample, float32 on the device.

    tta: "flip" averages the logits of the image and its mirror (features: the plain image).
    """
    net.eval()
    logits, feats = [], []
    for idx in torch.split(data.all_indices(), batch_size):
        x = data.batch(idx)
        with runtime.autocast():
            f = net.features(x)
            z = net.head(f)
            if tta == "flip":
                z = (z + net(x.flip(-1))) / 2
        logits.append(z.float())
        feats.append(f.float())
    return torch.cat(logits), torch.cat(feats)


@torch.no_grad()
def ensemble_logits(
    nets: Sequence[nn.Module], data: TrainData, *, runtime: Runtime, tta: str = "none"
) -> torch.Tensor:
    """Sum of the networks' logits (DivideMix's test-time ensemble), (N, K) on the device."""
    return torch.stack([infer(n, data, runtime=runtime, tta=tta)[0] for n in nets]).sum(0)
