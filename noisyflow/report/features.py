"""What the final networks see in the training images: features for the nearest-neighbour
index (data issues) and probabilities for the suggested classes (gallery, transition)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from noisyflow.train.data import TrainData
from noisyflow.train.engine import infer
from noisyflow.train.runtime import Runtime


@dataclass(frozen=True)
class NetView:
    features: np.ndarray  # (N, D) float32, unit length (see `net_view`)
    probs: np.ndarray  # (N, K) float32, the networks' mean softmax


def unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def net_view(
    nets: Sequence[torch.nn.Module], images: np.ndarray, labels: np.ndarray, runtime: Runtime
) -> NetView:
    """Per network: penultimate features, L2-normalised; the ensemble's feature is their mean,
    normalised again (so Euclidean distances between features are cosine distances' sqrt(2x))."""
    data = TrainData(images, labels, runtime)
    feats, probs = [], []
    for net in nets:
        logits, f = infer(net, data, runtime=runtime)
        probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        feats.append(unit(f.float().cpu().numpy()))
    return NetView(unit(np.mean(feats, axis=0)).astype(np.float32), np.mean(probs, axis=0))
