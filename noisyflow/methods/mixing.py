"""Mixing regularisers (`method.mixup`) for supervised steps.

A mixer turns one labelled batch into a scalar loss. It may own learned parts (attentive feature
mixup's attention), created per network by `module()`, trained with the network and saved in
its checkpoint. Networks expose `features(x) -> (B, D)` and `head` (features -> logits).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from noisyflow.methods.losses import LossFn
from noisyflow.methods.registry import NoParams, Registry

MIXINGS = Registry("mixup", section="mixing")


class Mixer:
    """Base class: the plain (unmixed) weighted loss."""

    def __init__(self, params: Any) -> None:
        self.params = params

    def module(self, feature_dim: int, num_classes: int) -> nn.Module | None:
        """Learned parts of this mixer for one network (None when it has none)."""
        return None

    def loss(
        self,
        net: nn.Module,
        extra: nn.Module | None,
        x: torch.Tensor,
        targets: torch.Tensor,
        weights: torch.Tensor,
        loss_fn: LossFn,
        *,
        rng: np.random.Generator,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean_b weights_b * loss_fn(net(x), targets)_b, the logits of the plain x or None).

        Args:
            x: (B, C, H, W) augmented inputs; targets: (B, K) soft targets; weights: (B,).
            rng: host RNG for scalars (mixing coefficients); generator: on x's device, for
                permutations.
        Returns:
            The scalar loss, and the logits of the un-mixed inputs when the mixer computed
            them (for regularisers and per-sample statistics), else None.
        """
        logits = net(x)
        return (weights * loss_fn(logits, targets)).mean(), logits


@MIXINGS.register("none", params=NoParams, paper="no mixing")
class NoMixing(Mixer):
    """No mixing: the loss on the batch as it is."""
