"""The deployable model: both DivideMix networks as one module that sums their logits."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Ensemble(nn.Module):
    """Sum of the member networks' logits, DivideMix's test-time prediction.

    Input is what `noisyflow.data.to_tensor` produces: (B, C, H, W) float32 in [0, 1].
    Output is (B, K) summed logits; `argmax(1)` is the predicted class.
    """

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(x) for net in self.nets]).sum(dim=0)  # (B, K)
