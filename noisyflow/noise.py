"""Synthetic label noise: symmetric and asymmetric (class-pair) injection, transition matrices.

Conventions (see research/methods.md §0):
- symmetric, include_true_class=False: exactly round(r*N) labels are replaced by one of the
  *other* K-1 classes, so the realised rate is r.
- symmetric, include_true_class=True (DivideMix): round(r*N) labels are redrawn from all K
  classes, so the realised rate is about r*(1-1/K).
- asymmetric: for each (from, to) pair, exactly round(r*n_from) samples of class `from` become
  `to` (the SCE-repo convention; flips per source class at exactly the nominal rate).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from noisyflow.errors import ParamsError


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


def inject_noise(
    labels: np.ndarray,
    num_classes: int,
    *,
    noise_type: str,
    rate: float,
    seed: int,
    include_true_class: bool = False,
    pairs: Sequence[Sequence[int]] = (),
) -> np.ndarray:
    """Dispatch on noise_type: none | symmetric | asymmetric."""
    if noise_type == "none" or rate == 0:
        return labels.astype(np.int64).copy()
    if noise_type == "symmetric":
        return inject_symmetric(
            labels, num_classes, rate, seed=seed, include_true_class=include_true_class
        )
    if noise_type == "asymmetric":
        return inject_asymmetric(labels, num_classes, rate, seed=seed, pairs=pairs)
    raise ParamsError(
        f"data.noise.type: unknown value {noise_type!r}; expected none|symmetric|asymmetric"
    )


def transition_matrix(
    true_labels: np.ndarray, noisy_labels: np.ndarray, num_classes: int
) -> np.ndarray:
    """Realised T[i, j] = P(noisy = j | true = i), shape (K, K); rows of absent classes are 0."""
    counts = np.zeros((num_classes, num_classes), dtype=np.float64)
    np.add.at(counts, (true_labels, noisy_labels), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
