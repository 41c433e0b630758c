"""Loss terms for noisy-label training (pure tensor functions, mean-reduced over the batch)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Standard CE with integer labels; logits (B, K), labels (B,) -> scalar."""
    return F.cross_entropy(logits, labels)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-mean_b sum_k t_bk log softmax(z)_bk for soft targets (B, K) -> scalar."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def neg_entropy_penalty(logits: torch.Tensor) -> torch.Tensor:
    """mean_b sum_k p log p (<= 0; equals -log K at the uniform prediction).

    Adding it to the loss with a positive weight rewards higher-entropy (less confident)
    predictions; DivideMix's warm-up uses it so that noisy samples keep a high loss.
    """
    log_p = F.log_softmax(logits, dim=1)
    return (log_p.exp() * log_p).sum(dim=1).mean()


def uniform_prior_penalty(logits: torch.Tensor) -> torch.Tensor:
    """KL(pi || mean_b softmax(z_b)) with the uniform prior pi_k = 1/K; >= 0, 0 at balance."""
    num_classes = logits.shape[1]
    mean_prob = F.softmax(logits, dim=1).mean(dim=0)
    return (math.log(1.0 / num_classes) - mean_prob.clamp_min(1e-12).log()).mean()


def unlabelled_mse(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean over batch and classes of (softmax(z) - t)^2 (DivideMix's L_u, averaged over K)."""
    return (F.softmax(logits, dim=1) - targets).pow(2).mean()
