"""An image folder, torchvision's ImageFolder layout: `root/<class>/**/<image>.<ext>`.

Class names are the sorted top-level folder names (hidden ones skipped); a class's images are
found recursively, hidden files and other extensions ignored, and sorted by their path relative
to the root. `index` is the position in that sorted listing (classes in order), so it names the
same file as long as the folder does not change. Symlinks are followed only when they resolve
inside the root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from noisyflow.data.images import IMAGE_EXTENSIONS, resolve_inside
from noisyflow.data.sources.base import (
    EncodedImages,
    SourceData,
    check_not_empty,
    class_names,
    display,
    resolve,
)
from noisyflow.errors import InputDataError

if TYPE_CHECKING:
    from noisyflow.config import DataParams


@dataclass(frozen=True)
class Listing:
    """A folder's images in source order: relative paths, real paths, labels, class names."""

    classes: tuple[str, ...]
    paths: tuple[str, ...]  # relative to the root, "/"-separated
    files: tuple[str, ...]  # real absolute paths
    labels: tuple[int, ...]


def list_folder(root: Path, *, shown: str) -> Listing:
    """List `root/<class>/...` images; InputDataError for a missing root, no classes, empty class."""
    if not root.is_dir():
        what = "a file" if root.exists() else "not found"
        raise InputDataError(
            f"{shown}: {what}; expected a folder of class folders (<class>/<image>)"
        )
    class_dirs = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            real = resolve_inside(root, entry.name, what=shown)
            if real.is_dir():
                class_dirs.append(entry.name)
        elif entry.is_dir():
            class_dirs.append(entry.name)
    check_not_empty(
        len(class_dirs), origin=shown, what="no class folders; expected <class>/<image> inside"
    )
    paths: list[str] = []
    files: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(class_dirs):
        found = sorted(_walk(root, name, shown, set()))
        if not found:
            raise InputDataError(
                f"{shown}/{name}: class folder has no images; expected files ending in "
                + ", ".join(IMAGE_EXTENSIONS)
                + " (remove the folder or add its images)"
            )
        for rel, real in found:
            paths.append(rel)
            files.append(real)
            labels.append(label)
    return Listing(tuple(class_dirs), tuple(paths), tuple(files), tuple(labels))


def _walk(root: Path, rel: str, shown: str, visited: set[str]) -> list[tuple[str, str]]:
    """(relative path, real path) of every image under root/rel, following safe symlinks."""
    real_dir = os.path.realpath(root / rel)
    if real_dir in visited:  # a symlink loop inside the root
        return []
    visited.add(real_dir)
    found = []
    for entry in os.scandir(root / rel):
        if entry.name.startswith("."):
            continue
        child = f"{rel}/{entry.name}"
        is_image = entry.name.lower().endswith(IMAGE_EXTENSIONS)
        if entry.is_symlink():
            if not (is_image or entry.is_dir()):
                continue
            real = resolve_inside(root, child, what=f"{shown}/{child}")
            if real.is_dir():
                found += _walk(root, child, shown, visited)
            elif is_image:
                if not real.is_file():
                    raise InputDataError(f"{shown}/{child}: broken link; expected an image file")
                found.append((child, str(real)))
        elif entry.is_dir():
            found += _walk(root, child, shown, visited)
        elif is_image and entry.is_file():
            found.append((child, os.path.realpath(entry.path)))
    return found


def load(params: DataParams, *, split: str = "train", base: Path = Path(".")) -> SourceData:
    written = params.path if split == "train" else params.test_path
    root, shown = resolve(written, base), display(written, base).rstrip("/")
    listing = list_folder(root, shown=shown)
    classes = class_names(listing.classes, params.classes, origin=shown, what="the folder")
    paths = np.asarray(listing.paths, dtype=str)
    return SourceData(
        labels=np.asarray(listing.labels, dtype=np.int64),
        classes=classes,
        index=np.arange(len(paths), dtype=np.int64),
        origin=shown,
        encoded=EncodedImages(files=np.asarray(listing.files, dtype=str), rel=paths, root=shown),
        paths=paths,
        label_format="names",
    )
