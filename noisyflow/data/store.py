"""Byte-level writers for the prepared directory: row-addressed `.npy` files and stable `.npz` files.

A `.npy` is created at its full size (sparse) and filled by rows with positioned writes, so any
process can write its chunk without the writer ever holding the whole array, and readers open
it with `np.load(..., mmap_mode="r")`. `.npz` files are written with fixed zip timestamps so the
same arrays give the same bytes (numpy's `savez` stamps the current time).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)


def create_npy(path: str | Path, shape: tuple[int, ...], dtype: np.dtype = np.uint8) -> int:
    """Create a C-order `.npy` of `shape` (zero-filled, sparse); return its header length."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": tuple(int(s) for s in shape),
    }
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        offset = fh.tell()
        fh.truncate(offset + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
    return offset


def npy_header_length(path: str | Path) -> int:
    """Byte offset of the data in an existing `.npy`."""
    view = np.load(path, mmap_mode="r", allow_pickle=False)
    try:
        return int(view.offset)
    finally:
        del view


def write_rows(fd: int, header_len: int, start: int, block: np.ndarray) -> None:
    """Write `block` (rows of the file's row shape, C-contiguous) at row `start` of an open `.npy`."""
    block = np.ascontiguousarray(block)
    row_bytes = block[0].nbytes if len(block) else 0
    data = memoryview(block).cast("B")
    offset = header_len + start * row_bytes
    written = 0
    while written < len(data):
        written += os.pwrite(fd, data[written:], offset + written)


def copy_rows(
    source: np.ndarray | str | Path, rows: np.ndarray, target: str | Path, *, chunk: int = 1024
) -> None:
    """Write `source[rows]` to a new `.npy` at `target`, `chunk` rows at a time.

    `source` is an array or a `.npy` path; a path is re-opened as a memory map for each chunk so
    that pages already copied leave this process (its resident memory stays about one chunk).
    """
    if isinstance(source, (str, Path)):
        probe = np.load(source, mmap_mode="r", allow_pickle=False)
        shape, dtype = probe.shape, probe.dtype
        del probe
    else:
        shape, dtype = source.shape, source.dtype
    header_len = create_npy(target, (len(rows), *shape[1:]), dtype)
    fd = os.open(target, os.O_WRONLY)
    try:
        for start in range(0, len(rows), chunk):
            picked = rows[start : start + chunk]
            if isinstance(source, (str, Path)):
                view = np.load(source, mmap_mode="r", allow_pickle=False)
                block = np.asarray(view[picked])
                del view
            else:
                block = np.asarray(source[picked])
            write_rows(fd, header_len, start, block)
    finally:
        os.close(fd)


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed `.npz` of `arrays` (sorted by name), byte-identical for identical arrays."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
