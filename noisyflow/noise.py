"""Synthetic label noise for benchmarks: symmetric, asymmetric (class pairs) and instance-dependent.

Conventions (see research/methods.md §0):
- symmetric, include_true_class=False: exactly round(r*N) labels are replaced by one of the
  *other* K-1 classes, so the realised rate is r.
- symmetric, include_true_class=True (DivideMix): round(r*N) labels are redrawn from all K
  classes, so the realised rate is about r*(1-1/K).
- asymmetric: for each (from, to) pair, exactly round(r*n_from) samples of class `from` become
  `to` (the SCE-repo convention; flips per source class at exactly the nominal rate). The map is
  `pairs` or, with map "cifar10", the CIFAR-10 map of Co-teaching / DivideMix: truck->automobile,
  bird->airplane, deer->horse, cat<->dog.
- instance: the instance-dependent (IDN) generator of Xia et al., "Part-dependent label noise:
  towards instance-dependent label noise", NeurIPS 2020 (their `get_instance_noisy_label`): each
  sample's flip rate q_i ~ N(r, std^2) truncated to [0, 1]; a seeded projection W (K, D, K) maps
  the flattened, per-channel standardised image x_i to scores x_i W[y_i]; the own class gets
  probability 1 - q_i and the other classes share q_i by the softmax of their scores. The
  expected realised rate is the truncated normal's mean (r when the truncation is negligible).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from noisyflow.errors import ParamsError
from noisyflow.metrics import confusion_matrix

# Co-teaching / DivideMix CIFAR-10 map: truck->automobile, bird->airplane, deer->horse, cat<->dog.
CIFAR10_PAIRS = ((9, 1), (2, 0), (4, 7), (3, 5), (5, 3))


def inject_symmetric(
    labels: np.ndarray,
    num_classes: int,
    rate: float,
    *,
    seed: int,
    include_true_class: bool = False,
) -> np.ndarray:
    """Return noisy labels (N,) int64; see the module docstring for the convention."""
    rng = np.random.default_rng(seed)
    noisy = labels.astype(np.int64).copy()
    chosen = rng.permutation(len(labels))[: int(round(rate * len(labels)))]
    if include_true_class:
        noisy[chosen] = rng.integers(0, num_classes, size=len(chosen))
    else:
        # An offset in 1..K-1 added modulo K is uniform over the other classes.
        noisy[chosen] = (
            noisy[chosen] + rng.integers(1, num_classes, size=len(chosen))
        ) % num_classes
    return noisy


def inject_asymmetric(
    labels: np.ndarray, num_classes: int, rate: float, *, seed: int, pairs: Sequence[Sequence[int]]
) -> np.ndarray:
    """Flip round(rate * n_c) samples of each source class c to its mapped class."""
    rng = np.random.default_rng(seed)
    noisy = labels.astype(np.int64).copy()
    sources = [int(a) for a, _ in pairs]
    if len(set(sources)) != len(sources):
        raise ParamsError(f"data.noise.pairs: a class appears twice as a source: {list(pairs)}")
    for src, dst in pairs:
        if not (0 <= src < num_classes and 0 <= dst < num_classes):
            raise ParamsError(f"data.noise.pairs: [{src}, {dst}] outside 0..{num_classes - 1}")
        members = np.flatnonzero(labels == src)
        chosen = rng.permutation(members)[: int(round(rate * len(members)))]
        noisy[chosen] = dst
    return noisy


def inject_instance(
    labels: np.ndarray,
    num_classes: int,
    rate: float,
    *,
    seed: int,
    std: float,
    images: np.ndarray,
    chunk_bytes: int = 64 << 20,
) -> np.ndarray:
    """Instance-dependent noise of Xia et al. (NeurIPS 2020); see the module docstring.

    images: (N, ...) uint8, e.g. a memory map; read in chunks of about `chunk_bytes` (float64),
    twice (channel statistics, then scores). The random draws (flip rates, W, one uniform per
    sample) come first, so the result does not depend on the chunking.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n, K = len(labels), num_classes
    if len(images) != n:
        raise ValueError(f"{len(images)} images for {n} labels")
    if K < 2:
        raise ParamsError(f"data.noise.type: instance noise needs at least 2 classes, got {K}")
    rng = np.random.default_rng(seed)
    flip = np.full(n, float(rate))
    if std > 0:  # truncated normal on [0, 1] by rejection (exact)
        flip = rng.normal(rate, std, n)
        outside = (flip < 0) | (flip > 1)
        while outside.any():
            flip[outside] = rng.normal(rate, std, int(outside.sum()))
            outside = (flip < 0) | (flip > 1)
    shape = images.shape[1:]
    D = int(np.prod(shape))
    W = rng.standard_normal((K, D, K))
    draws = rng.random(n)

    channels = shape[-1] if len(shape) == 3 else 1
    step = max(1, chunk_bytes // (8 * D))
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    for start in range(0, n, step):
        block = np.asarray(images[start : start + step], dtype=np.float64).reshape(-1, channels)
        block /= 255.0
        total += block.sum(0)
        total_sq += (block * block).sum(0)
    count = n * D // channels
    mean = total / count
    sd = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    sd[sd < 1e-6] = 1.0  # a constant channel: rounding noise must not be amplified

    noisy = labels.copy()
    for start in range(0, n, step):
        stop = min(start + step, n)
        x = np.asarray(images[start:stop], dtype=np.float64).reshape(stop - start, -1, channels)
        x = ((x / 255.0 - mean) / sd).reshape(stop - start, D)
        y = labels[start:stop]
        scores = np.empty((stop - start, K))
        for c in np.unique(y):
            rows = y == c
            scores[rows] = x[rows] @ W[c]
        scores[np.arange(len(y)), y] = -np.inf
        scores -= scores.max(1, keepdims=True)
        probs = np.exp(scores)
        probs *= (flip[start:stop] / probs.sum(1))[:, None]
        probs[np.arange(len(y)), y] = 1.0 - flip[start:stop]
        cumulative = np.cumsum(probs, axis=1)
        cumulative[:, -1] = np.inf  # rounding must never leave a draw unassigned
        noisy[start:stop] = (cumulative > draws[start:stop, None]).argmax(1)
    return noisy


def asymmetric_pairs(
    noise_map: str, pairs: Sequence[Sequence[int]], num_classes: int
) -> tuple[tuple[int, int], ...]:
    """The (from, to) pairs of `map` ("pairs" = the explicit list, or "cifar10"), checked against K."""
    if noise_map == "cifar10":
        if num_classes != 10:
            raise ParamsError(
                f"data.noise.map: 'cifar10' needs the 10 CIFAR-10 classes, got {num_classes}"
            )
        return CIFAR10_PAIRS
    if noise_map != "pairs":
        raise ParamsError(f"data.noise.map: unknown value {noise_map!r}; expected pairs|cifar10")
    checked = []
    for pair in pairs:
        if len(pair) != 2:
            raise ParamsError(f"data.noise.pairs: each entry must be [from, to], got {list(pair)}")
        src, dst = int(pair[0]), int(pair[1])
        if not (0 <= src < num_classes and 0 <= dst < num_classes):
            raise ParamsError(f"data.noise.pairs: [{src}, {dst}] outside 0..{num_classes - 1}")
        if src == dst:
            raise ParamsError(f"data.noise.pairs: [{src}, {dst}] maps a class to itself")
        checked.append((src, dst))
    if not checked:
        raise ParamsError("data.noise.pairs: empty; asymmetric noise needs at least one pair")
    return tuple(checked)


def inject_noise(
    labels: np.ndarray,
    num_classes: int,
    *,
    noise_type: str,
    rate: float,
    seed: int,
    include_true_class: bool = False,
    pairs: Sequence[Sequence[int]] = (),
    noise_map: str = "pairs",
    instance_std: float = 0.1,
    images: np.ndarray | None = None,
) -> np.ndarray:
    """Dispatch on noise_type: none | symmetric | asymmetric | instance (which needs `images`)."""
    if noise_type == "none" or rate == 0:
        return labels.astype(np.int64).copy()
    if noise_type == "symmetric":
        return inject_symmetric(
            labels, num_classes, rate, seed=seed, include_true_class=include_true_class
        )
    if noise_type == "asymmetric":
        checked = asymmetric_pairs(noise_map, pairs, num_classes)
        return inject_asymmetric(labels, num_classes, rate, seed=seed, pairs=checked)
    if noise_type == "instance":
        if images is None:
            raise ValueError("instance noise needs the images")
        return inject_instance(
            labels, num_classes, rate, seed=seed, std=instance_std, images=images
        )
    raise ParamsError(
        f"data.noise.type: unknown value {noise_type!r}; expected "
        "none|symmetric|asymmetric|instance"
    )


def transition_matrix(
    true_labels: np.ndarray, noisy_labels: np.ndarray, num_classes: int
) -> np.ndarray:
    """Realised T[i, j] = P(noisy = j | true = i), shape (K, K); rows of absent classes are 0."""
    return row_normalise(
        confusion_matrix(true_labels, noisy_labels, num_classes).astype(np.float64)
    )


def row_normalise(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum; rows that sum to 0 stay 0."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
