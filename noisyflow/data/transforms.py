"""Batched, device-agnostic tensor transforms: whole-batch work, no per-image Python loops."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C, H, W) float32 in [0, 1] on `device`."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def augment_batch(
    x: torch.Tensor, *, shift: int, hflip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Random translation by up to `shift` pixels (zero padding) and optional horizontal flip.

    Args:
        x: (B, C, H, W) float tensor on any device.
        generator: a CPU generator, so the same seed gives the same augmentation on any device.
    Returns:
        (B, C, H, W) augmented copy.
    """
    b, _, h, w = x.shape
    if shift > 0:
        padded = F.pad(x, (shift, shift, shift, shift))
        dy = torch.randint(0, 2 * shift + 1, (b,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * shift + 1, (b,), generator=generator).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B,1,H,1)
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B,1,1,W)
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if hflip:
        flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x
