"""The network every architecture is wrapped in: input normalisation, a backbone, a head.

Input is what `noisyflow.train.data` produces and what `noisyflow predict` feeds: float32
(B, C, H, W) in [0, 1]. The per-channel mean and std of the training set are buffers, so they
travel with every checkpoint and exported model. `features(x)` is the penultimate layer
(prototypes, AUM, curriculum, attentive feature mixup), `head` maps it to K logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Network(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        num_classes: int,
        *,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, D)."""
        return self.backbone((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, K) logits."""
        return self.head(self.features(x))
