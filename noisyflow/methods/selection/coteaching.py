"""Co-teaching: two networks teach each other with their small-loss samples.

Han, Yao, Yu, Niu, Xu, Hu, Tsang, Sugiyama, "Co-teaching: Robust Training of Deep Neural
Networks with Extremely Noisy Labels", NeurIPS 2018 (official code bhanML/Co-teaching). In each
mini-batch each network keeps the R(T) fraction of samples with the smallest of *its own* losses
and its peer is updated on them; R(T) = 1 - forget_rate(T) grows the forgetting from 0 to tau
over the first T_k epochs, since networks fit clean labels before noisy ones.

`per_class` ranks each loss relative to the median loss of its given class (from the epoch's
division) instead of as it is. Pairwise noise leaves some classes with fewer labels (CIFAR-10
asym-40: bird, deer, truck, whose labels are all clean); networks fit those later, so their
losses are larger across the board and a global rank forgets them almost wholesale, and the
networks then underfit them. Relative to its class median a sample stands out for its label,
not its class; a class whose losses are uniformly low (a clean one) still loses few samples,
unlike a fixed fraction per class (UNICON's uniform selection, Karim et al., CVPR 2022), which
lowered digits asym-40 by 7 points here.

Within an epoch the class medians follow the batches (`median_ema`): they start from the
epoch's division and move towards each batch's class medians. Held fixed for the whole epoch
they go stale as the networks learn: a class trained hard within the epoch keeps its high
median, is over-kept, and is then under-kept the next epoch; on CIFAR-10 sym-50 that
oscillation raised the kept samples' loss from epoch 8 on and cost 3.5 points of test accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from noisyflow.config.parse import param
from noisyflow.methods.selection.base import SELECTIONS, BatchRule, SelectionInputs, Selector
from noisyflow.types import Division


@dataclass(frozen=True)
class CoteachingParams:
    """Han et al., NeurIPS 2018; tau should match the (estimated) noise rate."""

    forget_rate: float = param(0.4, ge=0.0, lt=1.0)  # tau: set it to the noise rate
    num_gradual: int = param(10, ge=0)  # T_k: epochs over which forgetting grows to tau
    exponent: float = param(1.0, gt=0.0)  # c: the ramp reaches tau^c (official code)
    per_class: bool = True  # rank loss - its given class's median loss (see the module doc)
    median_ema: float = param(0.1, ge=0.0, le=1.0)  # batch medians' weight in the running ones


def forget_rate(epoch: int, tau: float, num_gradual: int, exponent: float = 1.0) -> float:
    """The official schedule: linspace(0, tau^c, T_k)[epoch] for epoch < T_k, tau afterwards.

    `epoch` indexes the schedule from 0 (the official loop trains from index 1, so its first
    epoch already forgets tau^c / (T_k - 1)). With c != 1 the ramp ends at tau^c and jumps to
    tau at epoch T_k, as in the official code.
    """
    if epoch < 0:
        raise ValueError(f"forget_rate: epoch must be >= 0, got {epoch}")
    if epoch >= num_gradual:
        return float(tau)
    if num_gradual == 1:
        return 0.0
    return float(tau**exponent) * epoch / (num_gradual - 1)


def num_kept(batch_size: int, keep_fraction: float) -> int:
    """floor(keep_fraction * B), at least 1 when B > 0 and keep_fraction > 0.

    The floor tolerates 1e-9 so that a rounding error (1 - 0.9 = 0.0999...) does not drop a
    sample; at least one is kept so the mean loss is never 0 / 0 (the official code yields NaN).
    """
    if not 0.0 <= keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in [0, 1], got {keep_fraction}")
    k = int(math.floor(keep_fraction * batch_size + 1e-9))
    return max(k, 1) if batch_size > 0 and keep_fraction > 0 else k


def small_loss_keep(losses: torch.Tensor, keep_fraction: float) -> torch.Tensor:
    """(B,) losses -> (B,) bool: the num_kept(B, keep_fraction) smallest losses.

    Ties are broken by position (a stable sort: the earlier sample is kept). Runs on the
    losses' device without a host sync.
    """
    k = num_kept(losses.shape[0], keep_fraction)
    order = torch.argsort(losses.detach(), stable=True)
    keep = torch.zeros(losses.shape[0], dtype=torch.bool, device=losses.device)
    return keep.index_fill(0, order[:k], True)


def class_medians(
    losses: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, N) losses, (N,) labels -> ((M, K) each row's lower median loss per class (torch's
    median; 0 where the class is absent), (K,) bool: the class is present). No host sync."""
    order = torch.argsort(losses, dim=1, stable=True)
    by_class = torch.argsort(labels[order], dim=1, stable=True)  # by class, then by loss
    ranked = torch.gather(losses, 1, torch.gather(order, 1, by_class))
    counts = torch.bincount(labels, minlength=num_classes)[:num_classes]
    middle = torch.cumsum(counts, 0) - counts + (counts - 1).clamp(min=0) // 2
    present = counts > 0
    medians = ranked[:, middle.clamp(max=max(labels.shape[0] - 1, 0))]
    return torch.where(present, medians, 0.0), present


def track_class_medians(
    running: torch.Tensor, losses: torch.Tensor, labels: torch.Tensor, weight: float
) -> torch.Tensor:
    """(M, K) running medians, (M, B) a batch's losses -> (1 - weight) * running + weight *
    the batch's class medians, for the classes in the batch; the others keep theirs."""
    batch, present = class_medians(losses.detach(), labels, running.shape[1])
    return torch.where(present, running + weight * (batch - running), running)


def coteaching_losses(
    loss_a: torch.Tensor,
    loss_b: torch.Tensor,
    keep_fraction: float,
    offset_a: torch.Tensor | None = None,
    offset_b: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The cross update of one mini-batch.

    Args:
        loss_a, loss_b: (B,) per-sample losses of networks a and b on the same batch.
        keep_fraction: R(T) = 1 - forget_rate(epoch).
        offset_a, offset_b: (B,) subtracted from each network's losses before ranking them
            (`per_class`: the class medians), or None; the updates use the losses as they are.
    Returns:
        (mean of loss_a over b's kept samples — what updates a,
         mean of loss_b over a's kept samples — what updates b,
         keep_a (B,) bool, keep_b (B,) bool).
    The official code divides these means by the number kept once more; that only rescales the
    learning rate (harmless with Adam, not with SGD), so it is not reproduced.
    """
    keep_a = small_loss_keep(loss_a if offset_a is None else loss_a - offset_a, keep_fraction)
    keep_b = small_loss_keep(loss_b if offset_b is None else loss_b - offset_b, keep_fraction)
    k = max(num_kept(loss_a.shape[0], keep_fraction), 1)
    update_a = torch.where(keep_b, loss_a, 0.0).sum() / k
    update_b = torch.where(keep_a, loss_b, 0.0).sum() / k
    return update_a, update_b, keep_a, keep_b


def loss_rank_probability(losses: torch.Tensor) -> torch.Tensor:
    """(N,) -> 1 - rank / (N - 1), rank 0 = smallest loss (ties by position); 1 when N == 1."""
    n = losses.shape[0]
    order = torch.argsort(losses, stable=True)
    rank = torch.empty(n, dtype=torch.float64, device=losses.device)
    rank[order] = torch.arange(n, dtype=torch.float64, device=losses.device)
    return 1.0 - rank / (n - 1) if n > 1 else torch.ones_like(rank)


@SELECTIONS.register("coteaching", params=CoteachingParams, paper="Han et al., NeurIPS 2018")
class CoteachingSelection(Selector):
    """Co-teaching: each network keeps its small-loss fraction and its peer trains on it.

    Per batch (`per_batch`): the engine calls `coteaching_losses` with `keep_fraction(epoch)`.
    Per epoch (`divide`): the same rule on every sample's loss gives the division shown in the
    label-issue table: clean_prob = 1 - rank / (N - 1) of each network's loss, labelled = the
    (1 - forget_rate(epoch)) fraction with the smallest loss. Network k trains on its peer's
    view (`Division.for_net`), which is co-teaching's cross update.
    """

    requires = frozenset({"losses"})
    yields_unlabelled = True
    per_batch = True
    redivide = True  # the epoch-level division (reporting, correction) follows the schedule

    def forget_rate(self, epoch: int) -> float:
        """This selector's forget rate at `epoch` (see `forget_rate`)."""
        p = self.params
        return forget_rate(epoch, p.forget_rate, p.num_gradual, p.exponent)

    def keep_fraction(self, epoch: int) -> float:
        """R(T) = 1 - forget_rate(epoch): the fraction each network keeps per batch."""
        return 1.0 - self.forget_rate(epoch)

    def divide(self, inputs: SelectionInputs, num_nets: int) -> Division:
        assert inputs.losses is not None
        losses = torch.as_tensor(np.asarray(inputs.losses, dtype=np.float64))
        keep = self.keep_fraction(inputs.epoch)
        ranked = losses[:num_nets] - self.offsets(losses[:num_nets], inputs.labels)
        clean_prob = np.stack([loss_rank_probability(r).numpy() for r in ranked])
        labelled = np.stack([small_loss_keep(r, keep).numpy() for r in ranked])
        rate = self.forget_rate(inputs.epoch)
        fit = {
            "kind": "coteaching",
            "forget_rate": rate,
            "epoch": inputs.epoch,
            "per_class": self.params.per_class,
        }
        fits = tuple({**fit, "kept": int(labelled[k].sum())} for k in range(num_nets))
        return Division(
            clean_prob, labelled, np.ones_like(clean_prob), losses.numpy()[:num_nets].copy(), fits
        )

    def offsets(self, losses: torch.Tensor, labels: Any) -> torch.Tensor:
        """(M, N) losses -> (M, N) what each network's ranking subtracts: its class medians
        with `per_class`, else 0."""
        if not self.params.per_class:
            return torch.zeros_like(losses)
        y = torch.as_tensor(np.asarray(labels), device=losses.device)
        medians, _ = class_medians(losses, y, int(y.max()) + 1 if len(y) else 0)
        return medians[:, y]

    def batch_rule(self, division: Division, labels: torch.Tensor) -> BatchRule:
        """Each network is updated on the samples its *peer* kept (see coteaching_losses).
        With `per_class` each ranks against running class medians: they start from
        `division`'s losses (this epoch's) and each batch moves them `median_ema` of the way to
        its own class medians before ranking. A division without losses ranks the losses as
        they are."""
        loss = torch.as_tensor(division.loss, dtype=torch.float32, device=labels.device)
        if not self.params.per_class or not bool(torch.isfinite(loss).all()):
            return lambda loss_a, loss_b, keep_fraction, idx: coteaching_losses(
                loss_a, loss_b, keep_fraction
            )
        running, _ = class_medians(loss, labels, int(labels.max()) + 1)
        running = running[[0, -1]]  # network a's and b's (one row each)
        weight = self.params.median_ema

        def rule(loss_a, loss_b, keep_fraction, idx):
            nonlocal running
            y = labels[idx]
            running = track_class_medians(running, torch.stack([loss_a, loss_b]), y, weight)
            return coteaching_losses(loss_a, loss_b, keep_fraction, running[0, y], running[1, y])

        return rule
