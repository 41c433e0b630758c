"""What every source returns: labels, class names, source rows and the images (or what to decode)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from noisyflow.errors import InputDataError


@dataclass(frozen=True)
class EncodedImages:
    """Images still to decode: files on disk, or encoded blobs (JPEG bytes + offsets) in memory.

    files:   (N,) absolute real paths, already checked to lie inside the data root
    rel:     (N,) the paths as the user wrote them, relative to `root` (shared with
             SourceData.paths, not a copy): messages name file i as `root/rel[i]`
    root:    the data root as messages show it
    listed_in: for a CSV, the file whose data row each image is ("" for a folder)
    blobs:   (bytes,) uint8, image i = blobs[offsets[i]:offsets[i + 1]]
    origin:  the file holding the blobs, named in messages ("<origin>: image 17")
    """

    files: np.ndarray | None = None
    rel: np.ndarray | None = None
    root: str = ""
    listed_in: str = ""
    blobs: np.ndarray | None = None
    offsets: np.ndarray | None = None
    origin: str = ""

    def __len__(self) -> int:
        return len(self.files) if self.files is not None else len(self.offsets) - 1

    def head(self, n: int) -> EncodedImages:
        if self.files is not None:
            return replace(self, files=self.files[:n], rel=self.rel[:n])
        return replace(self, offsets=self.offsets[: n + 1])

    def item(self, i: int) -> str | bytes:
        if self.files is not None:
            return str(self.files[i])
        return self.blobs[self.offsets[i] : self.offsets[i + 1]].tobytes()

    def name(self, i: int) -> str:
        if self.files is None:
            return f"{self.origin}: image {i}"
        shown = os.path.join(self.root, str(self.rel[i]))
        return f"{shown} ({self.listed_in} data row {i + 1})" if self.listed_in else shown

    def identity(self) -> str:
        """sha256 over what decoding reads: each file's path, size and mtime_ns, or the bytes."""
        digest = hashlib.sha256()
        if self.files is not None:
            for path in self.files:
                st = os.stat(path)
                digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        else:
            digest.update(np.ascontiguousarray(self.offsets, dtype=np.int64).tobytes())
            digest.update(memoryview(self.blobs[self.offsets[0] : self.offsets[-1]]))
        return digest.hexdigest()


@dataclass(frozen=True)
class SourceData:
    """One split of a user's source, in source order.

    labels:           (N,) int64 given labels, 0..K-1
    classes:          K class names
    index:            (N,) int64 row of each sample in the source (CSV data row from 0, position
                      in the sorted folder listing, npz / pack position)
    images:           (N, H, W, C) uint8 for array sources (digits, npz), else None
    encoded:          what to decode for file and pack sources, else None
    paths:            (N,) str, the file of each sample as the user wrote it (CSV) or relative to
                      the folder (imagefolder); None for array sources
    true_labels:      (N,) int64 verified labels, -1 where unaudited; None when none are known
    labels_are_clean: the source is curated (digits, CIFAR-10): its labels are the truth
    label_format:     "names" | "integers", how the source writes labels (export writes back alike)
    origin:           the file or folder messages name
    """

    labels: np.ndarray
    classes: tuple[str, ...]
    index: np.ndarray
    origin: str
    images: np.ndarray | None = None
    encoded: EncodedImages | None = None
    paths: np.ndarray | None = None
    true_labels: np.ndarray | None = None
    labels_are_clean: bool = False
    label_format: str = "integers"

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def head(self, n: int) -> SourceData:
        """The first n rows (data.subset)."""
        return replace(
            self,
            labels=self.labels[:n],
            index=self.index[:n],
            images=None if self.images is None else self.images[:n],
            encoded=None if self.encoded is None else self.encoded.head(n),
            paths=None if self.paths is None else self.paths[:n],
            true_labels=None if self.true_labels is None else self.true_labels[:n],
        )


def resolve(path: str | Path, base: Path) -> Path:
    """A path from params.yaml, relative to the project folder `base`."""
    path = Path(path)
    return path if path.is_absolute() else base / path


def display(path: str | Path, base: Path) -> str:
    """How messages name a file: as params.yaml wrote it when relative to the project."""
    path = Path(path)
    if path.is_absolute():
        return str(path)
    return str(path) if base == Path(".") else str(base / path)


def require_file(path: Path, *, key: str, shown: str) -> None:
    if not path.is_file():
        what = "a folder" if path.is_dir() else "not found"
        raise InputDataError(f"{shown}: {what}; expected a file ({key})")


def class_names(
    own: tuple[str, ...] | None, configured: tuple[str, ...] | None, *, origin: str, what: str
) -> tuple[str, ...]:
    """The source's class names reconciled with data.classes; never guessed from label values."""
    if own is None and configured is None:
        raise InputDataError(
            f"{origin}: {what} has integer labels but no class names; expected data.classes "
            "listing the K class names (classes are never inferred from the largest label)"
        )
    if own is not None and configured is not None and tuple(own) != tuple(configured):
        raise InputDataError(
            f"{origin}: classes {list(own)} disagree with data.classes {list(configured)}; "
            "expected the same names in the same order"
        )
    names = tuple(str(c) for c in (own if own is not None else configured))
    if len(names) < 2:
        raise InputDataError(f"{origin}: {len(names)} class(es) {list(names)}; expected at least 2")
    if len(set(names)) != len(names):
        raise InputDataError(f"{origin}: duplicate class names in {list(names)}")
    return names


def check_labels(labels: np.ndarray, num_classes: int, *, origin: str, row: str = "row") -> None:
    """Labels must be integers in 0..K-1; the first bad row is named."""
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InputDataError(
            f"{origin}: labels must be a 1-D integer array, got {labels.dtype} {labels.shape}"
        )
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        first = int(bad[0])
        raise InputDataError(
            f"{origin}: {row} {first} has label {int(labels[first])}, expected 0..{num_classes - 1} "
            f"({bad.size} row(s) out of range)"
        )


def check_not_empty(n: int, *, origin: str, what: str) -> None:
    if n == 0:
        raise InputDataError(f"{origin}: empty data set ({what}); expected at least one image")
