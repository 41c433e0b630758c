"""A small VGG-style CNN for low-resolution images (digits 8x8, CIFAR-sized subsets on CPU)."""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


class SmallCNN(nn.Module):
    """conv-conv-pool-conv-conv-global-pool backbone; (B, C, H, W) -> (B, 4w)."""

    def __init__(self, in_channels: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _block(in_channels, width),
            _block(width, 2 * width),
            nn.MaxPool2d(2),
            _block(2 * width, 4 * width),
            _block(4 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_dim = 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
