"""Deployable models: the networks' ensemble, and an image classifier taking raw image arrays."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Ensemble(nn.Module):
    """Sum of the member networks' logits (DivideMix's test-time prediction).

    Input: (B, C, H, W) float32 in [0, 1]; output: (B, K) summed logits.
    """

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(x) for net in self.nets]).sum(dim=0)


class ImageClassifier(nn.Module):
    """What the model registry serves: uint8 images (B, H, W, C) -> class probabilities (B, K).

    Images must already have the training size and channel count (`noisyflow predict` resizes
    files with the preprocessing stored in the checkpoint); normalisation is inside the networks.
    tta="flip" averages the logits of each image and its mirror (`model.tta`).
    """

    def __init__(self, nets: Sequence[nn.Module], tta: str = "none") -> None:
        super().__init__()
        self.ensemble = Ensemble(nets)
        self.flip = tta == "flip"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0
        logits = self.ensemble(x)
        if self.flip:
            logits = (logits + self.ensemble(x.flip(-1))) / 2
        return torch.softmax(logits, dim=1)
