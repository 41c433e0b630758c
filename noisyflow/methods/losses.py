"""Supervised losses (`method.loss`) and the regularisers any loss can take.

Every registered loss maps logits (B, K) and *soft* targets (B, K) to a per-sample loss (B,) and
is linear in the targets, L(z, t) = sum_k t_k * l(z, k). Integer labels are one-hot targets, and
mixup's lambda * L(y_i) + (1 - lambda) * L(y_j) equals L on the mixed targets, so the same loss
serves warm-up, supervised training, MixMatch's labelled term and FixMatch's labelled term.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from noisyflow.config.parse import param
from noisyflow.errors import ParamsError
from noisyflow.methods.registry import NoParams, Registry

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

LOSSES = Registry("loss", section="losses")


@LOSSES.register("ce", paper="standard cross-entropy")
def ce(logits: torch.Tensor, targets: torch.Tensor, p: object = None) -> torch.Tensor:
    """Cross-entropy -sum_k t_k log softmax(z)_k."""
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1)


@LOSSES.register("mae", params=NoParams, paper="Ghosh, Kumar, Sastry, AAAI 2017")
def mae(logits: torch.Tensor, targets: torch.Tensor, p: object = None) -> torch.Tensor:
    """Mean absolute error ||e_y - softmax(z)||_1 = 2 (1 - p_y): a symmetric, noise-tolerant loss.

    Ghosh et al. 2017 show that losses with sum_k L(z, k) constant (MAE; not CE) are tolerant to
    uniform noise below (K-1)/K. Linear extension to soft targets: sum_k t_k 2 (1 - p_k), which
    is 2 (1 - sum_k t_k p_k) for targets on the simplex. Its gradient is weighted by p_y, so it
    learns slowly (GCE's motivation). (B, K), (B, K) -> (B,).
    """
    return 2.0 * (targets * (1.0 - _probs(logits))).sum(dim=1)


@dataclass(frozen=True)
class GCEParams:
    """Zhang & Sabuncu, NeurIPS 2018: q -> 0 is CE, q = 1 is MAE / 2."""

    q: float = param(0.7, gt=0.0, le=1.0)  # Lq exponent in (0, 1] (paper: 0.7)


@LOSSES.register("gce", params=GCEParams, paper="Zhang & Sabuncu, NeurIPS 2018")
def gce(logits: torch.Tensor, targets: torch.Tensor, p: GCEParams) -> torch.Tensor:
    """Generalized cross-entropy (Lq): sum_k t_k (1 - p_k^q) / q.

    Zhang & Sabuncu 2018 interpolate between CE (q -> 0, the limit of (1 - p^q)/q is -log p) and
    MAE (q = 1 gives 1 - p_y = MAE / 2). Computed as -expm1(q log p) / q so that small q keeps its
    precision and log p = -1e4 stays finite. (The truncated variant's pruning is not included.)
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    return (targets * -torch.expm1(p.q * log_p)).sum(dim=1) / p.q


@dataclass(frozen=True)
class SCEParams:
    """Wang et al., ICCV 2019: alpha CE + beta RCE (CIFAR-10 defaults: alpha 0.1, beta 1.0)."""

    alpha: float = param(0.1, ge=0.0)  # weight of the CE term (CIFAR-100: 6.0)
    beta: float = param(1.0, ge=0.0)  # weight of the reverse-CE term (CIFAR-100: 0.1)
    A: float = param(-4.0, lt=0.0)  # log 0 replaced by A; the official code's clamp acts as -9.21

    def __post_init__(self) -> None:
        if self.alpha == 0.0 and self.beta == 0.0:
            raise ParamsError("losses.sce: alpha and beta cannot both be 0 (the loss would be 0)")


@LOSSES.register("sce", params=SCEParams, paper="Wang et al., ICCV 2019")
def sce(logits: torch.Tensor, targets: torch.Tensor, p: SCEParams) -> torch.Tensor:
    """Symmetric cross-entropy alpha CE(y, p) + beta RCE, RCE = -sum_k p_k log q_k with q = e_y.

    log 0 is undefined, so Wang et al. replace it by a constant A, giving RCE = -A (1 - p_y);
    linear extension: -A sum_k t_k (1 - p_k). We default to the paper's A = -4. The official
    Keras code clamps the one-hot to 1e-4 before the log, an effective A = ln(1e-4) = -9.21 (a
    2.3x larger beta): set `A: -9.21` to match the released code.
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    ce_term = -(targets * log_p).sum(dim=1)
    rce_term = -p.A * (targets * (1.0 - log_p.exp())).sum(dim=1)
    return p.alpha * ce_term + p.beta * rce_term


@dataclass(frozen=True)
class LabelSmoothingParams:
    """Szegedy et al., CVPR 2016; as a noisy-label regulariser, e.g. Lukasik et al., ICML 2020."""

    epsilon: float = param(0.1, ge=0.0, lt=1.0)  # target (1 - eps) t + eps / K


def smooth_targets(targets: torch.Tensor, epsilon: float) -> torch.Tensor:
    """(1 - eps) t + eps (sum_k t_k) / K: rows on the simplex stay on it. (B, K) -> (B, K).

    (The SCE repository's variant gives rows summing to 0.99; this is the standard form.)
    """
    num_classes = targets.shape[1]
    mass = targets.sum(dim=1, keepdim=True)
    return (1.0 - epsilon) * targets + (epsilon / num_classes) * mass


@LOSSES.register("label_smoothing", params=LabelSmoothingParams, paper="Szegedy et al., CVPR 2016")
def label_smoothing(
    logits: torch.Tensor, targets: torch.Tensor, p: LabelSmoothingParams
) -> torch.Tensor:
    """Cross-entropy on smoothed targets (1 - eps) t + eps / K (linear in t)."""
    return ce(logits, smooth_targets(targets.float(), p.epsilon))


def _probs(logits: torch.Tensor) -> torch.Tensor:
    return F.softmax(logits.float(), dim=1)


def bind(name: str, params: object) -> LossFn:
    """The registered loss `name` with its params bound: (logits, targets) -> (B,)."""
    fn = LOSSES.get(name).obj
    return lambda logits, targets: fn(logits, targets, params)


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(labels, num_classes).float()


# ----------------------------------------------------------------------------- regularisers


def neg_entropy(logits: torch.Tensor) -> torch.Tensor:
    """mean_b sum_k p log p (<= 0; -log K at the uniform prediction).

    Added with a positive weight it rewards less confident predictions; DivideMix's warm-up uses
    it under asymmetric noise so that flipped samples keep a high loss (Li et al., ICLR 2020).
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    return (log_p.exp() * log_p).sum(dim=1).mean()


def l1_penalty(module: nn.Module) -> torch.Tensor:
    """Sum of absolute weights (L1 regularisation; L2 is the optimizer's weight decay)."""
    return sum(p.abs().sum() for p in module.parameters() if p.requires_grad)


def uniform_prior(logits: torch.Tensor) -> torch.Tensor:
    """KL(pi || mean_b softmax(z_b)) with uniform pi_k = 1/K; >= 0, 0 at balance (DivideMix)."""
    num_classes = logits.shape[1]
    mean_prob = F.softmax(logits.float(), dim=1).mean(dim=0)
    return (math.log(1.0 / num_classes) - mean_prob.clamp_min(1e-12).log()).mean()


def unlabelled_mse(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean over batch and classes of (softmax(z) - t)^2 (DivideMix's L_u, averaged over K)."""
    return (F.softmax(logits.float(), dim=1) - targets).pow(2).mean()
