"""Data sources behind one registry: each module's `load(params, *, split, base)` -> SourceData.

digits (scikit-learn, the default), npz, imagefolder, csv, cifar10. A separate test set
(data.test_path) is read by the same source as the training data; cifar10's test split is the
pack's own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from noisyflow.data.sources import cifar10, csvfile, digits, imagefolder, npz
from noisyflow.data.sources.base import EncodedImages, SourceData
from noisyflow.errors import InputDataError

if TYPE_CHECKING:
    from noisyflow.config import DataParams

__all__ = ["SOURCES", "EncodedImages", "SourceData", "has_test_source", "load_source"]

SOURCES: dict[str, Callable[..., SourceData]] = {
    "digits": digits.load,
    "npz": npz.load,
    "imagefolder": imagefolder.load,
    "csv": csvfile.load,
    "cifar10": cifar10.load,
}


def has_test_source(params: DataParams) -> bool:
    """Whether the test split comes from a source (test_path, or the CIFAR-10 pack's test set)."""
    return bool(params.test_path) or params.source == "cifar10"


def load_source(params: DataParams, *, split: str = "train", base: Path = Path(".")) -> SourceData:
    """Load the training source (split="train") or the separate test set (split="test").

    Relative paths in `params` are taken relative to `base` (the project folder).
    """
    if params.source not in SOURCES:
        raise InputDataError(
            f"data.source: unknown source {params.source!r}; known: {', '.join(SOURCES)}"
        )
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if split == "test" and not has_test_source(params):
        raise InputDataError(
            f"data.test_path: not set; source {params.source!r} has no separate test set "
            "(prepare splits data.test_size instead)"
        )
    return SOURCES[params.source](params, split=split, base=Path(base))
