"""A small fast CIFAR network in the spirit of airbench (Keller Jordan, "94% on CIFAR-10 in
3.29 seconds on a single GPU", 2024): a frozen 2x2 patch-whitening convolution initialised from
the training images, then three conv groups (conv-pool-BN-GELU-conv-BN-GELU) of widths w, 4w, 4w,
global max pooling and a 1/9 output scale. The paper's training recipe (label smoothing, EMA of
weights, test-time flips) lives in the `fast` preset and the training loop, not here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _bn(width: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(width, momentum=0.4, eps=1e-12)
    bn.weight.requires_grad_(False)  # airbench trains only the BN shift
    return bn


class ConvGroup(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding="same", bias=False)
        self.norm1 = _bn(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding="same", bias=False)
        self.norm2 = _bn(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2, ceil_mode=True)))
        return F.gelu(self.norm2(self.conv2(x)))


class FastNet(nn.Module):
    """Backbone (B, C, H, W) -> (B, 4w); call `init_whitening` with training images once."""

    def __init__(self, in_channels: int, width: int = 64, whiten_kernel: int = 2) -> None:
        super().__init__()
        whiten_width = 2 * in_channels * whiten_kernel**2
        self.whiten = nn.Conv2d(in_channels, whiten_width, whiten_kernel, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.groups = nn.Sequential(
            ConvGroup(whiten_width, width),
            ConvGroup(width, 4 * width),
            ConvGroup(4 * width, 4 * width),
        )
        self.out_dim = 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(F.gelu(self.whiten(x)))
        return F.adaptive_max_pool2d(x, 1).flatten(1) / 9.0

    @torch.no_grad()
    def init_whitening(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening filters to the eigenvectors of the covariance of the images'
        k x k patches, scaled by 1/sqrt(eigenvalue), and their negatives. x: normalised
        (n, C, H, W) float training images (a few thousand suffice)."""
        k = self.whiten.kernel_size[0]
        patches = x.float().unfold(2, k, 1).unfold(3, k, 1)  # (n, C, H', W', k, k)
        patches = patches.transpose(1, 3).reshape(-1, x.shape[1] * k * k)
        patches = patches - patches.mean(dim=0)
        cov = patches.T @ patches / len(patches)
        eigval, eigvec = torch.linalg.eigh(cov.double())
        filters = (eigvec.T / (eigval + eps).sqrt()[:, None]).float()
        filters = filters.flip(0).reshape(-1, x.shape[1], k, k)
        self.whiten.weight.copy_(torch.cat([filters, -filters]))
        self.whiten.bias.zero_()
