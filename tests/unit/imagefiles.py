"""Tiny image folders, CSV label files and CIFAR-style packs built in temporary directories."""

from __future__ import annotations

import csv
import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from noisyflow.config import CsvParams, DataParams, NoiseParams


def pixels(size: tuple[int, int], seed: int, channels: int = 3) -> np.ndarray:
    """Seeded random uint8 pixels of (width, height)."""
    w, h = size
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def write_image(
    path: Path, *, mode: str = "RGB", size: tuple[int, int] = (12, 10), seed: int = 0
) -> Path:
    """An image of `mode` with seeded content; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(pixels(size, seed))
    if mode == "I;16":
        grey = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
        im = Image.fromarray(grey)
    elif mode == "P":
        im = rgb.convert("P")
    else:
        im = rgb.convert(mode)
    im.save(path)
    return path


def image_folder(
    root: Path,
    counts: dict[str, int],
    *,
    size: tuple[int, int] = (12, 10),
    ext: str = ".png",
    seed: int = 0,
) -> Path:
    """root/<class>/<class>_<k><ext> with seeded random RGB content."""
    for c, (name, n) in enumerate(sorted(counts.items())):
        for k in range(n):
            write_image(root / name / f"{name}_{k:02d}{ext}", size=size, seed=seed + 100 * c + k)
    return root


def write_csv(
    path: Path, header: list[str], rows: list[list[Any]], *, delimiter: str = ","
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def labelled_csv(
    folder: Path,
    counts: dict[str, int],
    *,
    name: str = "labels.csv",
    size: tuple[int, int] = (12, 10),
) -> tuple[Path, list[list[str]]]:
    """Images under folder/images/ and a CSV path,label next to them (rows in class order)."""
    rows = []
    for c, (cls, n) in enumerate(sorted(counts.items())):
        for k in range(n):
            rel = f"images/{cls}_{k:02d}.png"
            write_image(folder / rel, size=size, seed=10 * c + k)
            rows.append([rel, cls])
    return write_csv(folder / name, ["path", "label"], rows), rows


def params(**kw: Any) -> DataParams:
    """DataParams with no injected noise unless asked (user data), nested sections as dicts."""
    noise = kw.pop("noise", {"type": "none"})
    csv_cols = kw.pop("csv", {})
    return DataParams(noise=NoiseParams(**noise), csv=CsvParams(**csv_cols), **kw)


def fake_pack(path: Path, *, n_train: int, n_test: int, num_classes: int = 10) -> Path:
    """A small file in the CIFAR-10 JPEG pack's format (see shared/data/README.md)."""
    arrays: dict[str, np.ndarray] = {}
    for part, n, offset in (("train", n_train, 0), ("test", n_test, 10_000)):
        blobs, offsets = [], [0]
        for i in range(n):
            buf = io.BytesIO()
            Image.fromarray(pixels((32, 32), offset + i)).save(buf, format="JPEG", quality=90)
            blobs.append(buf.getvalue())
            offsets.append(offsets[-1] + len(blobs[-1]))
        arrays[f"{part}_jpeg"] = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        arrays[f"{part}_offsets"] = np.asarray(offsets, dtype=np.int64)
        arrays[f"{part}_labels"] = np.arange(n, dtype=np.int64) % num_classes
    arrays["classes"] = np.asarray([f"class{k}" for k in range(num_classes)])
    np.savez(path, **arrays)
    return path


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A valid tiny PNG whose header declares width x height (a decompression-bomb stand-in)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    start = data.index(b"IHDR")
    data[start + 4 : start + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[start : start + 17])) & 0xFFFFFFFF
    data[start + 17 : start + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path
