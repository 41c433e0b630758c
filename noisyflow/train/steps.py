"""Training steps and epochs of every method, on the one loop (`engine.run_pass`).

A pass trains one network on its division (DivideMix, FixMatch, supervised) or both networks
jointly (co-teaching); the step functions close over tensors on the device and return the loss
and device-side statistics. Which network's division trains which is decided here and only
here: with two networks, network k trains on `division.for_net(k)`, the peer's division.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from noisyflow.methods import losses as L
from noisyflow.methods.losses import LossFn
from noisyflow.methods.mixing import Mixer
from noisyflow.methods.ssl import mixmatch as mm
from noisyflow.train.data import TrainData, cycle_batches, shuffled_batches, weak_augment
from noisyflow.train.engine import run_pass
from noisyflow.train.runtime import Runtime
from noisyflow.train.state import TrainState
from noisyflow.types import Division

Targets = Callable[[torch.Tensor], torch.Tensor]
Recorder = Callable[[int, torch.Tensor, torch.Tensor], None]


@dataclass
class Context:
    """What every pass of a stage shares."""

    data: TrainData
    runtime: Runtime
    state: TrainState
    num_classes: int
    loss_fn: LossFn
    mixer: Mixer
    batch_size: int
    shift: int
    hflip: bool
    penalty: float = 0.0  # negative-entropy weight
    l1: float = 0.0
    epoch_steps: str = "labelled"  # SSL epochs: labelled | all (see TrainParams)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return weak_augment(x, shift=self.shift, hflip=self.hflip, generator=self.state.random.gen)

    def onehot(self, idx: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        y = (self.data.labels if labels is None else labels)[idx]
        return F.one_hot(y, self.num_classes).float()

    def regularise(self, loss: torch.Tensor, net: torch.nn.Module, logits: torch.Tensor | None):
        if self.penalty and logits is not None:
            loss = loss + self.penalty * L.neg_entropy(logits)
        if self.l1:
            loss = loss + self.l1 * L.l1_penalty(net)
        return loss

    def averager(self, *ks: int) -> Callable[[], None] | None:
        """After each optimizer step: update the weight averages of networks `ks` (if kept)."""
        pairs = [
            (self.state.averages[k], self.state.nets[k])
            for k in ks
            if k < len(self.state.averages) and self.state.averages[k] is not None
        ]
        if not pairs:
            return None

        def update() -> None:
            for avg, net in pairs:
                avg.update_parameters(net)

        return update


# ------------------------------------------------------------------------------- supervised


def supervised_pass(
    ctx: Context,
    k: int,
    indices: torch.Tensor,
    *,
    targets: Targets,
    weights: torch.Tensor | None = None,
    record: Recorder | None = None,
    where: str,
) -> dict[str, float]:
    """Train network k on `indices` with the supervised loss (+ mixing, regularisers).

    targets(idx) -> (B, K) soft targets; weights (N,) per-sample loss weights; record(k, idx,
    logits) sees each batch's plain training logits (per-sample statistics such as AUM margins).
    """
    net, extra = ctx.state.nets[k], _extra(ctx, k)
    fwd = ctx.runtime.forward(net)
    gen, rng = ctx.state.random.gen, ctx.state.random.rng

    def step(i: int, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = ctx.augment(ctx.data.batch(idx))
        w = weights[idx] if weights is not None else torch.ones(len(idx), device=idx.device)
        loss, logits = ctx.mixer.loss(
            fwd, extra, x, targets(idx), w, ctx.loss_fn, rng=rng, generator=gen
        )
        if record is not None and logits is not None:
            record(k, idx, logits.detach())
        loss = ctx.regularise(loss, net, logits)
        return loss, {"loss": loss}

    return _run_net(ctx, k, shuffled_batches(indices, ctx.batch_size, gen), step, where)


def coteaching_pass(
    ctx: Context,
    indices: torch.Tensor,
    *,
    keep_fraction: float,
    select: Callable[..., Any],
    where: str,
) -> dict[str, float]:
    """Co-teaching (Han et al., NeurIPS 2018): both networks see the same batch; each keeps its
    `keep_fraction` smallest-loss samples and the *peer* is updated on them.

    select(loss_a, loss_b, keep_fraction, idx) -> (loss for a, loss for b, kept by a, kept by b),
    idx the batch's sample indices (the selector's `batch_rule` for the epoch).
    """
    net_a, net_b = ctx.state.nets
    fwd_a, fwd_b = ctx.runtime.forward(net_a), ctx.runtime.forward(net_b)

    def step(i: int, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = ctx.augment(ctx.data.batch(idx))
        t = ctx.onehot(idx)
        logits_a, logits_b = fwd_a(x), fwd_b(x)
        loss_a, loss_b, kept_a, kept_b = select(
            ctx.loss_fn(logits_a, t), ctx.loss_fn(logits_b, t), keep_fraction, idx
        )
        loss_a = ctx.regularise(loss_a, net_a, logits_a)
        loss_b = ctx.regularise(loss_b, net_b, logits_b)
        stats = {"loss_net1": loss_a, "loss_net2": loss_b, "kept_frac": kept_a.float().mean()}
        return loss_a + loss_b, stats

    batches = shuffled_batches(indices, ctx.batch_size, ctx.state.random.gen)
    return run_pass(
        batches,
        step,
        ctx.state.optimizers,
        train=[net_a, net_b, *(m for m in ctx.state.extras if m is not None)],
        runtime=ctx.runtime,
        where=where,
        after_step=ctx.averager(0, 1),
    )


# ------------------------------------------------------------------------------- MixMatch


def mixmatch_pass(
    ctx: Context,
    k: int,
    division: Division,
    p: Any,
    *,
    epoch: int,
    where: str,
) -> dict[str, float]:
    """DivideMix's MixMatch epoch for network k on `division` (already the peer's view).

    Labelled targets: co-refinement of the given label with k's own prediction, weighted by the
    division's clean probability; unlabelled targets: co-guessing by k and its peer (by k alone
    with one network) over two augmentations; MixMatch mixup of all rows with lambda' =
    max(lambda, 1 - lambda); L = L_x + lambda_u * ramp(t) * L_u + prior_weight * KL(uniform ||
    mean prediction) (Li et al., ICLR 2020).
    """
    state, data = ctx.state, ctx.data
    net = state.nets[k]
    peer = state.nets[1 - k] if len(state.nets) == 2 else net
    fwd = ctx.runtime.forward(net)
    gen, rng = state.random.gen, state.random.rng
    labelled, unlabelled = _split(division, data.device)
    if len(labelled) == 0:
        return {}
    w_all = torch.as_tensor(division.clean_prob[0], dtype=torch.float32, device=data.device)
    lab_batches = _labelled_batches(ctx, labelled)
    unl_stream = cycle_batches(unlabelled, ctx.batch_size, gen)
    if peer is not net:
        peer.eval()
    fwd_peer = ctx.runtime.forward(peer)

    def step(i: int, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        uidx = next(unl_stream)
        x = data.batch(idx)
        x1, x2 = ctx.augment(x), ctx.augment(x)
        with torch.no_grad():
            px = (F.softmax(fwd(x1).float(), 1) + F.softmax(fwd(x2).float(), 1)) / 2
            tx = mm.co_refine(px, ctx.onehot(idx), w_all[idx], p.temperature)
            inputs, targets = [x1, x2], [tx, tx]
            if uidx is not None:
                u = data.batch(uidx)
                u1, u2 = ctx.augment(u), ctx.augment(u)
                guesses = [F.softmax(m(v).float(), 1) for m in (fwd, fwd_peer) for v in (u1, u2)]
                tu = mm.co_guess(guesses, p.temperature)
                inputs, targets = [x1, x2, u1, u2], [tx, tx, tu, tu]
        all_x, all_t = torch.cat(inputs), torch.cat(targets)
        perm = torch.randperm(len(all_x), generator=gen, device=all_x.device)
        lam = mm.mix_lambda(p.alpha, rng)
        mixed_x, mixed_t = mm.mixmatch_mix(all_x, all_t, lam, perm)
        logits = fwd(mixed_x)
        n_x = 2 * len(idx)
        loss_x = ctx.loss_fn(logits[:n_x], mixed_t[:n_x]).mean()
        loss_u = L.unlabelled_mse(logits[n_x:], mixed_t[n_x:]) if uidx is not None else 0 * loss_x
        ramp = mm.linear_rampup(epoch + i / len(lab_batches), p.rampup_epochs)
        loss = loss_x + p.lambda_u * ramp * loss_u + p.prior_weight * L.uniform_prior(logits)
        loss = ctx.regularise(loss, net, None)
        return loss, {"loss": loss, "loss_x": loss_x, "loss_u": loss_u}

    return _run_net(ctx, k, lab_batches, step, where)


# ------------------------------------------------------------------------------- FixMatch


def fixmatch_pass(
    ctx: Context,
    k: int,
    division: Division,
    p: Any,
    *,
    strong: Callable[..., torch.Tensor],
    unlabelled_loss: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    where: str,
) -> dict[str, float]:
    """FixMatch (Sohn et al., NeurIPS 2020) for network k: the supervised loss on weakly
    augmented labelled images plus lambda_u x the masked pseudo-label loss of strongly augmented
    unlabelled images (pseudo-labels from their weak view); one forward over all views. With
    `co_refine` the labelled target is DivideMix's co-refinement of the given label by k's own
    (detached) prediction on the same view, weighted by the peer's clean probability; with
    `prior_weight` the step adds DivideMix's uniform-prior penalty over all of its views."""
    state, data = ctx.state, ctx.data
    net = state.nets[k]
    fwd = ctx.runtime.forward(net)
    gen = state.random.gen
    labelled, unlabelled = _split(division, data.device)
    if len(labelled) == 0:
        return {}
    weights = torch.as_tensor(division.weight[0], dtype=torch.float32, device=data.device)
    clean = torch.as_tensor(division.clean_prob[0], dtype=torch.float32, device=data.device)
    lab_batches = _labelled_batches(ctx, labelled)
    unl_stream = cycle_batches(unlabelled, ctx.batch_size * p.mu, gen)

    def targets(idx: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if not p.co_refine:
            return ctx.onehot(idx)
        probs = F.softmax(logits.detach().float(), 1)
        return mm.co_refine(probs, ctx.onehot(idx), clean[idx], p.temperature)

    def prior(logits: torch.Tensor) -> torch.Tensor | float:
        return p.prior_weight * L.uniform_prior(logits) if p.prior_weight else 0.0

    def step(i: int, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        uidx = next(unl_stream)
        xw = ctx.augment(data.batch(idx))
        if uidx is None:
            logits = fwd(xw)
            loss = (weights[idx] * ctx.loss_fn(logits, targets(idx, logits))).mean()
            loss = ctx.regularise(loss, net, logits) + prior(logits)
            return loss, {"loss": loss}
        u = data.batch(uidx)
        uw = ctx.augment(u)
        us = strong(ctx.augment(u), ops=p.strong_ops, magnitude=p.strong_magnitude, generator=gen)
        logits = fwd(torch.cat([xw, uw, us]))
        b, m = len(idx), len(uidx)
        loss_x = (weights[idx] * ctx.loss_fn(logits[:b], targets(idx, logits[:b]))).mean()
        loss_u, mask = unlabelled_loss(logits[b : b + m], logits[b + m :], p.threshold)
        loss = ctx.regularise(loss_x + p.lambda_u * loss_u, net, logits[:b]) + prior(logits)
        return loss, {"loss": loss, "loss_x": loss_x, "loss_u": loss_u, "mask": mask.float().mean()}

    return _run_net(ctx, k, lab_batches, step, where)


# ------------------------------------------------------------------------------- helpers


def _split(division: Division, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    lab = torch.as_tensor(division.labelled[0], device=device)
    everything = torch.arange(len(lab), device=device)
    return everything[lab], everything[~lab]


def _labelled_batches(ctx: Context, labelled: torch.Tensor) -> list[torch.Tensor]:
    """An SSL epoch's labelled batches: one shuffled pass (`labelled`), or ceil(N / batch)
    batches cycling through reshuffled passes (`all`: a supervised epoch's number of steps)."""
    gen = ctx.state.random.gen
    if ctx.epoch_steps == "labelled":
        return shuffled_batches(labelled, ctx.batch_size, gen)
    stream = cycle_batches(labelled, ctx.batch_size, gen)
    return [next(stream) for _ in range(-(-len(ctx.data) // ctx.batch_size))]


def _extra(ctx: Context, k: int) -> torch.nn.Module | None:
    return ctx.state.extras[k] if k < len(ctx.state.extras) else None


def _run_net(ctx: Context, k: int, batches: Any, step: Any, where: str) -> dict[str, float]:
    """The one-network pass: network k (and its mixing module) trained by its own optimizer,
    its weight average updated after every step."""
    extra = _extra(ctx, k)
    return run_pass(
        batches,
        step,
        [ctx.state.optimizers[k]],
        train=[ctx.state.nets[k]] + ([extra] if extra is not None else []),
        runtime=ctx.runtime,
        where=where,
        after_step=ctx.averager(k),
    )


def soft_targets(ctx: Context, labels: torch.Tensor | None = None) -> Targets:
    """idx -> one-hot targets of `labels` (default: the given labels)."""
    return partial(ctx.onehot, labels=labels)


def blended_targets(ctx: Context, pseudo: torch.Tensor, alpha: float) -> Targets:
    """Han et al.'s self-learning target (1 - alpha) * onehot(y) + alpha * onehot(y_hat): by
    linearity of the loss in the target, the loss equals (1 - alpha) L(y) + alpha L(y_hat)."""

    def targets(idx: torch.Tensor) -> torch.Tensor:
        return (1 - alpha) * ctx.onehot(idx) + alpha * ctx.onehot(idx, pseudo)

    return targets


def as_device(array: np.ndarray, device: torch.device, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array), dtype=dtype, device=device)
