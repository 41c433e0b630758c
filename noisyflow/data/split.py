"""Seeded stratified splits, with the preconditions checked and explained before scikit-learn runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from noisyflow.errors import InputDataError


def stratified_split(
    labels: np.ndarray,
    test_size: int,
    seed: int,
    *,
    key: str = "data.test_size",
    classes: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (kept, held_out) positions, stratified by label, reproducible for a seed.

    Every class must have at least 2 samples, and both parts at least one sample per class
    present; otherwise an InputDataError says which class or size is short (`key` names the
    parameter that asked for the split).
    """
    labels = np.asarray(labels)
    n = len(labels)
    present, counts = np.unique(labels, return_counts=True)
    k = len(present)
    names = list(classes) if classes is not None else None

    def name(c: int) -> str:
        return repr(names[c]) if names is not None else str(c)

    if not 0 < test_size < n:
        raise InputDataError(f"{key}: {test_size} must be between 1 and {n - 1} ({n} samples)")
    short = present[counts < 2]
    if short.size:
        c = int(short[0])
        raise InputDataError(
            f"{key}: class {name(c)} has {int(counts[present == c][0])} sample(s); a stratified "
            f"split needs at least 2 per class (add images of it or remove the class)"
        )
    if test_size < k:
        raise InputDataError(
            f"{key}: {test_size} is smaller than the {k} classes; a stratified split needs at "
            f"least one held-out sample per class (set {key} >= {k})"
        )
    if n - test_size < k:
        raise InputDataError(
            f"{key}: {test_size} leaves {n - test_size} samples for {k} classes; expected at "
            f"most {n - k}"
        )
    idx = np.arange(n)
    kept, held = train_test_split(idx, test_size=test_size, stratify=labels, random_state=seed)
    return np.sort(kept), np.sort(held)
