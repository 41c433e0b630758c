"""Training images on the compute device and batched, device-side augmentation.

The uint8 images live on the device as one (N, C, H, W) tensor when they fit (4x smaller than
float); a batch is gathered by index and converted to float in [0, 1] there. When they do not
fit (or `runtime.data_on_device: no`), batches are gathered from the memory-mapped array on the
host and copied through pinned memory. Randomness comes from a generator on the data's device,
so no index or permutation crosses between host and device in the hot loop.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from noisyflow.train.runtime import Runtime


class TrainData:
    """Images (N, H, W, C) uint8 + labels (N,) int64, served as device batches by index."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, runtime: Runtime) -> None:
        self.device = runtime.device
        self.runtime = runtime
        self.num_samples = len(labels)
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=self.device)
        self.on_device = runtime.fits_on_device(images.nbytes)
        if self.on_device:
            host = torch.from_numpy(np.array(images, copy=True))  # (N, H, W, C), off the map
            self.x = host.to(self.device).permute(0, 3, 1, 2)  # NCHW view, NHWC storage
            self._host = None
        else:
            self.x = None
            self._host = images

    def __len__(self) -> int:
        return self.num_samples

    @property
    def shape(self) -> tuple[int, ...]:
        n, h, w, c = (self.num_samples, *self._image_shape())
        return (n, c, h, w)

    def _image_shape(self) -> tuple[int, int, int]:
        if self.x is not None:
            _, c, h, w = self.x.shape
            return h, w, c
        return tuple(self._host.shape[1:])

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        """(B,) indices on the device -> (B, C, H, W) float32 in [0, 1] on the device."""
        if self.x is not None:
            raw = self.x[idx]
        else:
            rows = idx.cpu().numpy()
            chunk = torch.from_numpy(np.ascontiguousarray(self._host[rows]))
            if self.device.type == "cuda":
                chunk = chunk.pin_memory()
            raw = chunk.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        x = raw.float().div_(255.0)
        return x.contiguous(memory_format=self.runtime.memory_format)

    def all_indices(self) -> torch.Tensor:
        return torch.arange(self.num_samples, device=self.device)


def shuffled_batches(
    indices: torch.Tensor, batch_size: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """Shuffle `indices` with the (device) generator and cut into batches; last may be smaller."""
    perm = torch.randperm(len(indices), generator=generator, device=indices.device)
    return list(torch.split(indices[perm], batch_size))


def cycle_batches(indices: torch.Tensor, batch_size: int, generator: torch.Generator):
    """Endless shuffled batches of `indices`; yields None forever when there are none."""
    while True:
        if len(indices) == 0:
            yield None
            continue
        yield from shuffled_batches(indices, batch_size, generator)


def weak_augment(
    x: torch.Tensor, *, shift: int, hflip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Random translation by up to `shift` pixels (zero padding) and optional horizontal flip.

    x: (B, C, H, W) float on the generator's device. One gather for the whole batch.
    """
    b, c, h, w = x.shape
    dev = x.device
    if shift > 0:
        padded = F.pad(x, (shift, shift, shift, shift))
        dy = torch.randint(0, 2 * shift + 1, (b,), generator=generator, device=dev)
        dx = torch.randint(0, 2 * shift + 1, (b,), generator=generator, device=dev)
        rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]  # (B,1,H,1)
        cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]  # (B,1,1,W)
        batch = torch.arange(b, device=dev)[:, None, None, None]
        chan = torch.arange(c, device=dev)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if hflip:
        flip = torch.rand(b, generator=generator, device=dev) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


def channel_stats(images: np.ndarray, max_samples: int = 10_000) -> tuple[list, list]:
    """Per-channel mean and std of uint8 (N, H, W, C) images in [0, 1] units (first rows)."""
    sample = np.asarray(images[:max_samples], dtype=np.float64) / 255.0
    mean = sample.mean(axis=(0, 1, 2))
    std = sample.std(axis=(0, 1, 2))
    return mean.round(6).tolist(), np.maximum(std, 1e-3).round(6).tolist()
