"""Supervised losses (`method.loss`) and the regularisers any loss can take.

Every registered loss maps logits (B, K) and *soft* targets (B, K) to a per-sample loss (B,) and
is linear in the targets, L(z, t) = sum_k t_k * l(z, k). Integer labels are one-hot targets, and
mixup's lambda * L(y_i) + (1 - lambda) * L(y_j) equals L on the mixed targets, so the same loss
serves warm-up, supervised training, MixMatch's labelled term and FixMatch's labelled term.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from noisyflow.methods.registry import Registry

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

LOSSES = Registry("loss", section="losses")


@LOSSES.register("ce", paper="standard cross-entropy")
def ce(logits: torch.Tensor, targets: torch.Tensor, p: object = None) -> torch.Tensor:
    """Cross-entropy -sum_k t_k log softmax(z)_k."""
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1)


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
