"""MixMatch pieces used by DivideMix: sharpening, co-refinement, co-guessing, mixup, ramp-up.

Li, Socher, Hoi, "DivideMix", ICLR 2020; Berthelot et al., "MixMatch", NeurIPS 2019.
"""

from __future__ import annotations

import numpy as np
import torch


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """p^(1/T) renormalised over classes; (B, K) -> (B, K). T < 1 makes p peakier."""
    powered = probs.clamp_min(1e-12).pow(1.0 / temperature)
    return powered / powered.sum(dim=1, keepdim=True)


def co_refine(
    probs: torch.Tensor, onehot: torch.Tensor, clean_prob: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Refined labelled targets sharpen(w*y + (1-w)*p); probs/onehot (B, K), clean_prob (B,)."""
    w = clean_prob[:, None]
    return sharpen(w * onehot + (1.0 - w) * probs, temperature)


def co_guess(probs: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """Guessed unlabelled targets: sharpened mean of several (B, K) predictions."""
    return sharpen(torch.stack(probs).mean(dim=0), temperature)


def mix_lambda(alpha: float, rng: np.random.Generator) -> float:
    """lam ~ Beta(alpha, alpha), then max(lam, 1 - lam) so each mixed row stays closest to its
    own input (the labelled rows of a MixMatch batch stay mostly labelled)."""
    lam = float(rng.beta(alpha, alpha))
    return max(lam, 1.0 - lam)


def mixmatch_mix(
    inputs: torch.Tensor, targets: torch.Tensor, lam: float, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix row i with row perm[i]: x' = lam*x + (1-lam)*x[perm], same for targets.

    Args:
        inputs: (B, ...) batch; targets: (B, K) soft targets; perm: (B,) permutation.
    Returns:
        (mixed_inputs, mixed_targets) with the shapes of the inputs.
    """
    mixed_x = lam * inputs + (1.0 - lam) * inputs[perm]
    mixed_t = lam * targets + (1.0 - lam) * targets[perm]
    return mixed_x, mixed_t


def linear_rampup(epoch: float, rampup_epochs: int) -> float:
    """clip(epoch / rampup_epochs, 0, 1): the weight ramp of the unlabelled loss."""
    if rampup_epochs <= 0:
        return 1.0
    return min(max(epoch / rampup_epochs, 0.0), 1.0)
