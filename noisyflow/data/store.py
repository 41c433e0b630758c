"""Byte-level writers for the prepared directory: row-addressed `.npy` files and stable `.npz` files.

A `.npy` is created at its full size (sparse) and filled by rows with positioned writes, so any
process can write its chunk without the writer ever holding the whole array; later stages open
it with `np.load(..., mmap_mode="r")`, while copies between files use positioned reads. `.npz` files are written with fixed zip timestamps so the
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


def write_rows(fd: int, header_len: int, start: int, block: np.ndarray) -> None:
    """Write `block` (rows of the file's row shape, C-contiguous) at row `start` of an open `.npy`."""
    block = np.ascontiguousarray(block)
    row_bytes = block[0].nbytes if len(block) else 0
    data = memoryview(block).cast("B")
    offset = header_len + start * row_bytes
    written = 0
    while written < len(data):
        written += os.pwrite(fd, data[written:], offset + written)


def npy_layout(path: str | Path) -> tuple[int, tuple[int, ...], np.dtype]:
    """(header length, shape, dtype) of a C-order `.npy`, from its header alone."""
    view = np.load(path, mmap_mode="r", allow_pickle=False)
    try:
        if not view.flags.c_contiguous:
            raise ValueError(f"{path}: expected a C-order array")
        return int(view.offset), tuple(view.shape), view.dtype
    finally:
        del view


def read_rows(path: str | Path, rows: np.ndarray) -> np.ndarray:
    """`array[rows]` of a `.npy` by positioned reads (one per run of consecutive rows).

    Unlike indexing a memory map, this leaves no file pages mapped into the process, so its
    resident memory stays the size of the result (a map's fault-around would add up to 64 KiB
    per scattered row).
    """
    header_len, shape, dtype = npy_layout(path)
    rows = np.asarray(rows, dtype=np.int64)
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    out = np.empty((len(rows), *shape[1:]), dtype=dtype)
    if not len(rows):
        return out
    if rows.min() < 0 or rows.max() >= shape[0]:
        raise IndexError(f"{path}: rows outside 0..{shape[0] - 1}")
    buf = memoryview(out.reshape(-1).view(np.uint8))
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(rows)]])
    fd = os.open(path, os.O_RDONLY)
    try:
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            target = buf[a * row_bytes : b * row_bytes]
            offset = header_len + int(rows[a]) * row_bytes
            done = 0
            while done < len(target):
                got = os.preadv(fd, [target[done:]], offset + done)
                if got == 0:
                    raise OSError(f"{path}: file shorter than its header says")
                done += got
    finally:
        os.close(fd)
    return out


def copy_rows(
    source: np.ndarray | str | Path, rows: np.ndarray, target: str | Path, *, chunk: int = 1024
) -> None:
    """Write `source[rows]` to a new `.npy` at `target`, `chunk` rows at a time.

    `source` is an array or a `.npy` path (read with `read_rows`, so this process holds about
    one chunk whatever the data set's size).
    """
    if isinstance(source, (str, Path)):
        _, shape, dtype = npy_layout(source)
    else:
        shape, dtype = source.shape, source.dtype
    header_len = create_npy(target, (len(rows), *shape[1:]), dtype)
    fd = os.open(target, os.O_WRONLY)
    try:
        for start in range(0, len(rows), chunk):
            picked = rows[start : start + chunk]
            if isinstance(source, (str, Path)):
                block = read_rows(source, picked)
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
