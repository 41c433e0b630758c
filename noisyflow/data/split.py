"""Seeded stratified train/test split."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from noisyflow.errors import InputDataError


def stratified_split(
    labels: np.ndarray, test_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (train_idx, test_idx), stratified by label, reproducible for a seed."""
    n = len(labels)
    if not 0 < test_size < n:
        raise InputDataError(f"data.test_size: must be between 1 and {n - 1}, got {test_size}")
    idx = np.arange(n)
    train_idx, test_idx = train_test_split(
        idx, test_size=test_size, stratify=labels, random_state=seed
    )
    return np.sort(train_idx), np.sort(test_idx)
