"""Data sources: each turns a location into `LabeledImages` (uint8 NHWC images + int labels).

New sources (image folders, CSV label files, CIFAR) register a loader in `SOURCES`; every stage
after `prepare` sees only the prepared arrays, never the source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisyflow.errors import InputDataError
from noisyflow.io import load_npz


@dataclass(frozen=True)
class LabeledImages:
    """images: (N, H, W, C) uint8; labels: (N,) int64 in 0..K-1; classes: K names.

    labels_are_clean: the source's labels are known to be correct (a curated benchmark), so
    they can score detection and correction; a user's own labels are not assumed to be.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    labels_are_clean: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load_digits_source(path: str | None = None) -> LabeledImages:
    """scikit-learn's digits: 1,797 8x8 grey images (0..16) scaled to uint8."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    classes = tuple(str(c) for c in digits.target_names)
    return LabeledImages(images, digits.target.astype(np.int64), classes, labels_are_clean=True)


def load_npz_source(path: str | None) -> LabeledImages:
    """A plain .npz with `x` (N, H, W[, C]) uint8 and `y` (N,) int; optional `classes` (str)."""
    if not path:
        raise InputDataError("data.path: an .npz path is required for source 'npz'")
    arrays = load_npz(path, required=("x", "y"))
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 3:
        x = x[..., None]
    classes = arrays.get("classes")
    if classes is None:
        if y.size == 0 or not np.issubdtype(y.dtype, np.integer):
            raise InputDataError(f"{path}: 'y' must be non-empty integers, got dtype {y.dtype}")
        names = tuple(str(i) for i in range(int(y.max()) + 1))
    else:
        names = tuple(str(c) for c in classes.tolist())
    return validate_images(x, y, names, origin=str(path))


def validate_images(
    images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], *, origin: str
) -> LabeledImages:
    """Check shapes, dtypes and label range; raise InputDataError naming the first bad row."""
    if images.ndim != 4 or images.dtype != np.uint8:
        raise InputDataError(
            f"{origin}: images must be uint8 of shape (N, H, W, C), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InputDataError(f"{origin}: labels must be a 1-D integer array, got {labels.dtype}")
    if len(images) != len(labels):
        raise InputDataError(
            f"{origin}: {len(images)} images but {len(labels)} labels; they must match"
        )
    bad = np.flatnonzero((labels < 0) | (labels >= len(classes)))
    if bad.size:
        row = int(bad[0])
        raise InputDataError(
            f"{origin}: row {row} has label {int(labels[row])}, expected 0..{len(classes) - 1} "
            f"({bad.size} bad rows)"
        )
    if len(classes) < 2:
        raise InputDataError(f"{origin}: need at least 2 classes, got {len(classes)}")
    return LabeledImages(images, labels.astype(np.int64), classes)


SOURCES: dict[str, Callable[[str | None], LabeledImages]] = {
    "digits": load_digits_source,
    "npz": load_npz_source,
}


def load_source(name: str, path: str | None = None) -> LabeledImages:
    """Load a registered source by name (see SOURCES)."""
    if name not in SOURCES:
        raise InputDataError(f"unknown data source {name!r}; known: {', '.join(SOURCES)}")
    if path is not None and name != "digits" and not Path(path).exists():
        raise InputDataError(f"{path}: file not found (data.path for source {name!r})")
    return SOURCES[name](path)
