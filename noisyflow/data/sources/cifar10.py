"""The CIFAR-10 JPEG pack (`cifar10-jpeg.npz`): curated labels, JPEG bytes decoded by Pillow.

Training images keep CIFAR-10's original order (data_batch_1..5), so per-index label files
published for CIFAR-10 (e.g. CIFAR-10N) line up with `data.labels_path`; the test split is the
pack's 10,000 test images (from data.test_path when given, else from the same pack).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from noisyflow.data.sources.base import (
    EncodedImages,
    SourceData,
    check_labels,
    check_not_empty,
    class_names,
    display,
    require_file,
    resolve,
)
from noisyflow.errors import InputDataError

if TYPE_CHECKING:
    from noisyflow.config import DataParams


def load(params: DataParams, *, split: str = "train", base: Path = Path(".")) -> SourceData:
    from_test_path = split == "test" and bool(params.test_path)
    written = params.test_path if from_test_path else params.path
    key = "data.test_path" if from_test_path else "data.path"
    path, shown = resolve(written, base), display(written, base)
    require_file(path, key=key, shown=shown)
    part = "train" if split == "train" else "test"
    names = (f"{part}_jpeg", f"{part}_offsets", f"{part}_labels", "classes")
    arrays = _load_arrays(path, shown, names)
    blobs, offsets, labels = (arrays[n] for n in names[:3])
    origin = f"{shown} ({part})"
    if blobs.dtype != np.uint8 or blobs.ndim != 1:
        raise InputDataError(f"{origin}: '{names[0]}' is {blobs.dtype}; expected (bytes,) uint8")
    ok = (
        offsets.ndim == 1
        and np.issubdtype(offsets.dtype, np.integer)
        and len(offsets) == len(labels) + 1
        and offsets[0] >= 0
        and offsets[-1] <= len(blobs)
        and bool(np.all(np.diff(offsets) > 0))
    )
    if not ok:
        raise InputDataError(
            f"{origin}: '{names[1]}' must be {len(labels) + 1} increasing offsets into "
            f"'{names[0]}' ({len(blobs)} bytes)"
        )
    check_not_empty(len(labels), origin=origin, what=f"'{names[2]}' has no rows")
    own = tuple(str(c) for c in arrays["classes"].tolist())
    classes = class_names(own, params.classes, origin=shown, what="the CIFAR-10 pack")
    check_labels(labels, len(classes), origin=f"{origin} '{names[2]}'")
    return SourceData(
        labels=labels.astype(np.int64),
        classes=classes,
        index=np.arange(len(labels), dtype=np.int64),
        origin=origin,
        encoded=EncodedImages(blobs=blobs, offsets=offsets.astype(np.int64), origin=origin),
        labels_are_clean=True,
    )


def _load_arrays(path: Path, shown: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Only the named arrays of the pack (not the other split's bytes), without pickle."""
    try:
        with np.load(path, allow_pickle=False) as pack:
            missing = [n for n in names if n not in pack.files]
            if missing:
                raise InputDataError(
                    f"{shown}: missing array(s) {', '.join(missing)}; expected the CIFAR-10 "
                    f"JPEG pack's arrays, found {', '.join(pack.files) or 'none'}"
                )
            return {n: pack[n] for n in names}
    except (ValueError, OSError) as exc:
        raise InputDataError(f"{shown}: not a readable .npz without pickle ({exc})") from None
