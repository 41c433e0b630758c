"""Co-teaching: two networks teach each other with their small-loss samples.

Han, Yao, Yu, Niu, Xu, Hu, Tsang, Sugiyama, "Co-teaching: Robust Training of Deep Neural
Networks with Extremely Noisy Labels", NeurIPS 2018 (official code bhanML/Co-teaching). In each
mini-batch each network keeps the R(T) fraction of samples with the smallest of *its own* losses
and its peer is updated on them; R(T) = 1 - forget_rate(T) grows the forgetting from 0 to tau
over the first T_k epochs, since networks fit clean labels before noisy ones.

`per_class` ranks each loss among the samples of the same given label instead (class-balanced
selection, as in the uniform selection of Karim et al., "UNICON", CVPR 2022). Pairwise noise
leaves some classes with fewer labels (CIFAR-10 asym-40: bird, deer, truck); networks fit those
later, so a global small-loss rank forgets them almost wholesale although their labels are the
clean ones, and the networks then underfit them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from noisyflow.config.parse import param
from noisyflow.methods.selection.base import SELECTIONS, SelectionInputs, Selector
from noisyflow.types import Division


@dataclass(frozen=True)
class CoteachingParams:
    """Han et al., NeurIPS 2018; tau should match the (estimated) noise rate."""

    forget_rate: float = param(0.4, ge=0.0, lt=1.0)  # tau: set it to the noise rate
    num_gradual: int = param(10, ge=0)  # T_k: epochs over which forgetting grows to tau
    exponent: float = param(1.0, gt=0.0)  # c: the ramp reaches tau^c (official code)
    per_class: bool = True  # rank losses within each given class (class-balanced selection)


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


def class_quantile(losses: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) -> rank / n_c of each loss among the n_c samples with the same label (rank 0 =
    smallest; ties by position), so every class's smallest loss scores 0. No host sync."""
    n = losses.shape[0]
    by_loss = torch.argsort(losses.detach(), stable=True)
    order = by_loss[torch.argsort(labels[by_loss], stable=True)]  # grouped by class, by loss
    grouped, pos = labels[order], torch.arange(n, device=losses.device)
    first = torch.ones(n, dtype=torch.bool, device=losses.device)
    first[1:] = grouped[1:] != grouped[:-1]
    last = torch.ones_like(first)
    last[:-1] = first[1:]
    start = torch.cummax(torch.where(first, pos, 0), 0).values
    end = torch.cummin(torch.where(last, pos, n - 1).flip(0), 0).values.flip(0)
    quantile = torch.empty(n, dtype=torch.float64, device=losses.device)
    quantile[order] = (pos - start).double() / (end - start + 1).double()
    return quantile


def small_loss_order(losses: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) indices from the most to the least trusted sample: by loss, or with `labels` by the
    loss's quantile within its class (ties by loss, then position)."""
    order = torch.argsort(losses.detach(), stable=True)
    if labels is None:
        return order
    return order[torch.argsort(class_quantile(losses, labels)[order], stable=True)]


def small_loss_keep(
    losses: torch.Tensor, keep_fraction: float, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """(B,) losses -> (B,) bool: the num_kept(B, keep_fraction) smallest losses (with `labels`,
    the smallest within-class quantiles, so each class keeps about the same fraction).

    Ties are broken by position (a stable sort: the earlier sample is kept). Runs on the
    losses' device without a host sync.
    """
    k = num_kept(losses.shape[0], keep_fraction)
    order = small_loss_order(losses, labels)
    keep = torch.zeros(losses.shape[0], dtype=torch.bool, device=losses.device)
    return keep.index_fill(0, order[:k], True)


def coteaching_losses(
    loss_a: torch.Tensor,
    loss_b: torch.Tensor,
    keep_fraction: float,
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The cross update of one mini-batch.

    Args:
        loss_a, loss_b: (B,) per-sample losses of networks a and b on the same batch.
        keep_fraction: R(T) = 1 - forget_rate(epoch).
        labels: (B,) given labels for class-balanced selection, or None (global rank).
    Returns:
        (mean of loss_a over b's kept samples — what updates a,
         mean of loss_b over a's kept samples — what updates b,
         keep_a (B,) bool, keep_b (B,) bool).
    The official code divides these means by the number kept once more; that only rescales the
    learning rate (harmless with Adam, not with SGD), so it is not reproduced.
    """
    keep_a = small_loss_keep(loss_a, keep_fraction, labels)
    keep_b = small_loss_keep(loss_b, keep_fraction, labels)
    k = max(num_kept(loss_a.shape[0], keep_fraction), 1)
    update_a = torch.where(keep_b, loss_a, 0.0).sum() / k
    update_b = torch.where(keep_a, loss_b, 0.0).sum() / k
    return update_a, update_b, keep_a, keep_b


def loss_rank_probability(losses: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) -> 1 - rank / (N - 1), rank 0 = the most trusted (`small_loss_order`); 1 when N == 1."""
    n = losses.shape[0]
    order = small_loss_order(losses, labels)
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
        y = torch.as_tensor(np.asarray(inputs.labels)) if self.params.per_class else None
        clean_prob = np.stack(
            [loss_rank_probability(losses[k], y).numpy() for k in range(num_nets)]
        )
        labelled = np.stack([small_loss_keep(losses[k], keep, y).numpy() for k in range(num_nets)])
        rate = self.forget_rate(inputs.epoch)
        fit = {"kind": "coteaching", "forget_rate": rate, "epoch": inputs.epoch}
        fits = tuple({**fit, "kept": int(labelled[k].sum())} for k in range(num_nets))
        return Division(
            clean_prob, labelled, np.ones_like(clean_prob), losses.numpy()[:num_nets].copy(), fits
        )

    def batch_losses(
        self,
        loss_a: torch.Tensor,
        loss_b: torch.Tensor,
        keep_fraction: float,
        labels: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each network is updated on the samples its *peer* kept (see coteaching_losses)."""
        return coteaching_losses(
            loss_a, loss_b, keep_fraction, labels if self.params.per_class else None
        )
