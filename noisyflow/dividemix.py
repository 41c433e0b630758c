"""DivideMix as epoch functions for the engine: warm-up, co-divide, and co-training epochs.

Li, Socher, Hoi, "DivideMix: Learning with Noisy Labels as Semi-supervised Learning", ICLR 2020.
Ground truth never enters here: only given labels, images and the networks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from noisyflow import losses, ssl
from noisyflow.engine import minibatches, optimize, predict
from noisyflow.selection import clean_probability, per_sample_loss

Augment = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainSet:
    """The training images on the compute device: x (N, C, H, W) float, labels (N,) int64."""

    x: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    def __len__(self) -> int:
        return len(self.labels)


def warmup_epoch(
    nets: Sequence[nn.Module],
    optimizers: Sequence[torch.optim.Optimizer],
    data: TrainSet,
    *,
    batch_size: int,
    penalty: float,
    augment: Augment,
    generator: torch.Generator,
) -> dict[str, float]:
    """One CE (+ penalty * negative entropy) pass over all samples for each network."""
    stats: dict[str, float] = {}
    everything = torch.arange(len(data))
    for k, (net, opt) in enumerate(zip(nets, optimizers, strict=True), start=1):

        def step(idx: torch.Tensor, net: nn.Module = net) -> tuple[torch.Tensor, dict[str, float]]:
            idx = idx.to(data.x.device)
            logits = net(augment(data.x[idx]))
            ce = losses.cross_entropy(logits, data.labels[idx])
            loss = ce + penalty * losses.neg_entropy_penalty(logits) if penalty else ce
            return loss, {"loss": loss.item(), "ce": ce.item()}

        out = optimize(net, opt, minibatches(everything, batch_size, generator), step)
        stats.update({f"{key}_net{k}": value for key, value in out.items()})
    return stats


def codivide(
    nets: Sequence[nn.Module],
    data: TrainSet,
    *,
    max_iter: int,
    tol: float,
    reg_covar: float,
    seed: int,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per network: per-sample CE on un-augmented images and its GMM clean probability.

    Returns (clean_probs, per_sample_losses), each a list of (N,) arrays, one per network.
    """
    probs, all_losses = [], []
    labels = data.labels.cpu()
    for net in nets:
        loss = per_sample_loss(predict(net, data.x), labels).numpy()
        all_losses.append(loss)
        probs.append(
            clean_probability(loss, max_iter=max_iter, tol=tol, reg_covar=reg_covar, seed=seed)
        )
    return probs, all_losses


@dataclass(frozen=True)
class MixMatchConfig:
    batch_size: int
    alpha: float
    temperature: float
    lambda_u: float
    rampup_epochs: int
    prior_weight: float


def dividemix_epoch(
    net: nn.Module,
    peer: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: TrainSet,
    clean_prob: np.ndarray,
    labelled: np.ndarray,
    *,
    epoch: int,
    cfg: MixMatchConfig,
    augment: Augment,
    generator: torch.Generator,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Train `net` for one pass over the labelled set chosen by the *peer's* division.

    Labelled targets: co-refinement with the peer's clean probability; unlabelled targets:
    co-guessing by both networks over two augmentations; then MixMatch mixup and
    L = L_x + lambda_u(t) * L_u + prior_weight * KL(uniform || mean prediction).
    """
    device = data.x.device
    lab_idx = torch.from_numpy(np.flatnonzero(labelled))
    unl_idx = torch.from_numpy(np.flatnonzero(~labelled))
    if len(lab_idx) == 0:
        return {}
    w_all = torch.as_tensor(clean_prob, dtype=torch.float32, device=device)
    lab_batches = minibatches(lab_idx, cfg.batch_size, generator)
    unl_stream = _cycle(unl_idx, cfg.batch_size, generator)
    peer.eval()

    def step(i_and_idx: tuple[int, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        i, idx = i_and_idx
        idx = idx.to(device)
        uidx = next(unl_stream)
        x, y = data.x[idx], F.one_hot(data.labels[idx], data.num_classes).float()
        x1, x2 = augment(x), augment(x)
        with torch.no_grad():
            px = (F.softmax(net(x1), 1) + F.softmax(net(x2), 1)) / 2
            tx = ssl.co_refine(px, y, w_all[idx], cfg.temperature)
            inputs, targets = [x1, x2], [tx, tx]
            if uidx is not None:
                u = data.x[uidx.to(device)]
                u1, u2 = augment(u), augment(u)
                guesses = [F.softmax(m(v), 1) for m in (net, peer) for v in (u1, u2)]
                tu = ssl.co_guess(guesses, cfg.temperature)
                inputs, targets = [x1, x2, u1, u2], [tx, tx, tu, tu]
        all_x, all_t = torch.cat(inputs), torch.cat(targets)
        perm = torch.randperm(len(all_x), generator=generator).to(device)
        mixed_x, mixed_t = ssl.mixmatch_mix(all_x, all_t, ssl.mix_lambda(cfg.alpha, rng), perm)
        logits = net(mixed_x)
        n_x = 2 * len(idx)
        loss_x = losses.soft_cross_entropy(logits[:n_x], mixed_t[:n_x])
        loss_u = (
            losses.unlabelled_mse(logits[n_x:], mixed_t[n_x:]) if uidx is not None else 0 * loss_x
        )
        ramp = ssl.linear_rampup(epoch + i / len(lab_batches), cfg.rampup_epochs)
        prior = losses.uniform_prior_penalty(logits)
        loss = loss_x + cfg.lambda_u * ramp * loss_u + cfg.prior_weight * prior
        return loss, {"loss": loss.item(), "loss_x": loss_x.item(), "loss_u": loss_u.item()}

    return optimize(net, optimizer, enumerate(lab_batches), step)


def _cycle(indices: torch.Tensor, batch_size: int, generator: torch.Generator):
    """Endless shuffled batches of `indices`; yields None forever when it is empty."""
    while True:
        if len(indices) == 0:
            yield None
            continue
        yield from minibatches(indices, batch_size, generator)
