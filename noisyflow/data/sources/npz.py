"""A plain .npz: `x` uint8 (N, H, W) or (N, H, W, C), `y` (N,) int, optional `classes` (str).

Without a `classes` array the class names must come from data.classes: a stray label 3000 must
be an error, not a 3,001-class problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from noisyflow.data.sources.base import (
    SourceData,
    check_labels,
    check_not_empty,
    class_names,
    display,
    require_file,
    resolve,
)
from noisyflow.errors import InputDataError
from noisyflow.io import load_npz

if TYPE_CHECKING:
    from noisyflow.config import DataParams


def load(params: DataParams, *, split: str = "train", base: Path = Path(".")) -> SourceData:
    key = "data.path" if split == "train" else "data.test_path"
    written = params.path if split == "train" else params.test_path
    path, shown = resolve(written, base), display(written, base)
    require_file(path, key=key, shown=shown)
    arrays = load_npz(path, required=("x", "y"))
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 3:
        x = x[..., None]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise InputDataError(
            f"{shown}: 'x' is {x.dtype} {x.shape}; expected uint8 (N, H, W) or (N, H, W, C) "
            "with C = 1 or 3 (scale to 0..255 and cast to uint8)"
        )
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise InputDataError(f"{shown}: 'y' is {y.dtype} {y.shape}; expected (N,) integers")
    if len(x) != len(y):
        raise InputDataError(f"{shown}: {len(x)} images in 'x' but {len(y)} labels in 'y'")
    check_not_empty(len(y), origin=shown, what="'x' has no rows")
    own = None
    if "classes" in arrays:
        raw = arrays["classes"]
        if raw.ndim != 1 or raw.dtype.kind not in "US":
            raise InputDataError(
                f"{shown}: 'classes' is {raw.dtype} {raw.shape}; expected (K,) str"
            )
        own = tuple(c.decode() if isinstance(c, bytes) else str(c) for c in raw.tolist())
    classes = class_names(own, params.classes, origin=shown, what="the npz")
    check_labels(y, len(classes), origin=f"{shown} 'y'")
    return SourceData(
        labels=y.astype(np.int64),
        classes=classes,
        index=np.arange(len(y), dtype=np.int64),
        origin=shown,
        images=x,
    )
