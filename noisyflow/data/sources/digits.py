"""scikit-learn's digits: 1,797 curated 8x8 grey images (0..16 scaled to 0..255), the default."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from noisyflow.data.sources.base import SourceData, class_names
from noisyflow.errors import InputDataError

if TYPE_CHECKING:
    from noisyflow.config import DataParams


def load(params: DataParams, *, split: str = "train", base: Path = Path(".")) -> SourceData:
    """The whole digits set (it has no separate test set: prepare splits `data.test_size`)."""
    if split != "train":
        raise InputDataError("digits: no separate test set; remove data.test_path")
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    own = tuple(str(c) for c in digits.target_names)
    classes = class_names(own, params.classes, origin="digits", what="scikit-learn digits")
    labels = digits.target.astype(np.int64)
    return SourceData(
        labels=labels,
        classes=classes,
        index=np.arange(len(labels), dtype=np.int64),
        origin="digits (scikit-learn)",
        images=images,
        labels_are_clean=True,
    )
