"""Decode a source's images once, in parallel, into a memory-mappable uint8 `.npy`, with a cache.

Workers (a process pool over chunks of `chunk_size` images, `workers` processes, 0 = every
available core) decode with `noisyflow.data.images.decode_image` and write each image straight
into the output file at its row (positioned writes into the `.npy` created at full size), so
neither the parent nor a worker ever holds more than one decoded image: a data set larger than
RAM decodes. The parent keeps at most two chunks per worker in flight, so even encoded bytes
(the CIFAR-10 pack) are handed out a chunk at a time.

The cache lives in a folder the caller owns (the prepare stage uses `.noisyflow/cache`, which
`dvc repro` leaves alone) and is keyed by what the pixels depend on: every file's real path,
size and mtime_ns (or the encoded bytes themselves), the output size, resize mode, channels,
max_pixels, Pillow's version and this module's format version. A second decode with the same key
reads nothing but the key's inputs. A failed decode leaves no cache file behind.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL

from noisyflow.data.images import Preprocess, decode_image, image_size_of, preprocess_array
from noisyflow.data.store import create_npy, write_rows
from noisyflow.errors import InputDataError

if TYPE_CHECKING:  # the package import would pull in every source (and torch) in each worker
    from noisyflow.data.sources.base import EncodedImages

FORMAT_VERSION = 1


@dataclass(frozen=True)
class DecodeStats:
    """What one decode did: images, images per original mode, converted ones, time, cache hit."""

    count: int
    modes: dict[str, int]
    converted: int
    seconds: float
    cache_hit: bool
    workers: int

    def counts(self) -> dict[str, Any]:
        """The deterministic part (for meta.json): same inputs, same numbers."""
        return {"count": self.count, "modes": dict(self.modes), "converted": self.converted}


@dataclass(frozen=True)
class _Chunk:
    path: str
    header_len: int
    start: int
    items: tuple[str | bytes, ...]
    names: tuple[str, ...]
    spec: Preprocess
    shape: tuple[int, int, int]


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cache_key(encoded: EncodedImages, spec: Preprocess, shape: tuple[int, int, int]) -> str:
    """Hex sha256 of everything the decoded pixels depend on."""
    spec_part = {**asdict(spec), "shape": list(shape)}
    head = json.dumps(
        {"format": FORMAT_VERSION, "pillow": PIL.__version__, "spec": spec_part}, sort_keys=True
    )
    return hashlib.sha256(f"{head}\n{encoded.identity()}".encode()).hexdigest()


def output_shape(encoded: EncodedImages, spec: Preprocess) -> tuple[int, int, int]:
    """(H, W, C) of every decoded image: the spec's size, else the first image's own size."""
    if spec.size is not None:
        return (spec.size[0], spec.size[1], spec.channels)
    h, w = image_size_of(encoded.item(0), name=encoded.name(0), max_pixels=spec.max_pixels)
    return (h, w, spec.channels)


def decode_to_cache(
    encoded: EncodedImages,
    spec: Preprocess,
    *,
    cache_dir: str | Path,
    workers: int = 0,
    chunk_size: int = 256,
) -> tuple[Path, DecodeStats]:
    """Decode `encoded` into `cache_dir/<key>.npy` (N, H, W, C) uint8 unless already cached.

    Returns the `.npy` path and the stats (`cache_hit` True when nothing was decoded). Raises
    InputDataError naming the first bad file; then nothing is left in the cache.
    """
    t0 = time.perf_counter()
    cache_dir = Path(cache_dir)
    n = len(encoded)
    if n == 0:
        raise InputDataError(f"{encoded.origin}: empty data set; expected at least one image")
    shape = output_shape(encoded, spec)
    key = cache_key(encoded, spec, shape)
    target, record = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    cached = _read_record(record, target, (n, *shape))
    if cached is not None:
        return target, _stats(cached, n, spec, time.perf_counter() - t0, True, 0)

    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    n_workers = min(available_cpus() if workers == 0 else workers, -(-n // chunk_size))
    try:
        header_len = create_npy(tmp, (n, *shape))
        chunks = (
            _Chunk(
                str(tmp),
                header_len,
                start,
                tuple(encoded.item(i) for i in range(start, min(start + chunk_size, n))),
                tuple(encoded.name(i) for i in range(start, min(start + chunk_size, n))),
                spec,
                shape,
            )
            for start in range(0, n, chunk_size)
        )
        modes = _run(chunks, n_workers)
        os.replace(tmp, target)
        record_tmp = record.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
        record_tmp.write_text(json.dumps({"shape": [n, *shape], "modes": modes}, sort_keys=True))
        os.replace(record_tmp, record)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target, _stats(modes, n, spec, time.perf_counter() - t0, False, n_workers)


def transform_array(images: np.ndarray, spec: Preprocess) -> tuple[np.ndarray, DecodeStats]:
    """Array sources (digits, npz): resize / convert channels only when the spec asks for it."""
    t0 = time.perf_counter()
    n, h, w, c = images.shape
    mode = "L" if c == 1 else "RGB"
    same_size = spec.size is None or tuple(spec.size) == (h, w)
    if same_size and spec.channels == c:
        out = images
    else:
        out = np.stack([preprocess_array(img, spec) for img in images])
    return out, _stats({mode: n}, n, spec, time.perf_counter() - t0, False, 1)


def _stats(
    modes: dict[str, int], n: int, spec: Preprocess, seconds: float, hit: bool, workers: int
) -> DecodeStats:
    target = "L" if spec.channels == 1 else "RGB"
    converted = sum(v for k, v in modes.items() if k != target)
    return DecodeStats(n, dict(sorted(modes.items())), converted, round(seconds, 3), hit, workers)


def _read_record(record: Path, target: Path, shape: tuple[int, ...]) -> dict[str, int] | None:
    """The cached modes when both files exist and agree on the shape; else None (decode again)."""
    if not (record.is_file() and target.is_file()):
        return None
    try:
        info = json.loads(record.read_text())
        view = np.load(target, mmap_mode="r", allow_pickle=False)
        ok = tuple(view.shape) == shape == tuple(info["shape"]) and view.dtype == np.uint8
        del view
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
    return {str(k): int(v) for k, v in info["modes"].items()} if ok else None


def _run(chunks: Any, n_workers: int) -> dict[str, int]:
    """Decode every chunk, in this process or a pool; sum the mode counts."""
    modes: Counter[str] = Counter()
    if n_workers <= 1:
        for chunk in chunks:
            modes.update(_decode_chunk(chunk))
        return dict(modes)
    # spawn: workers start clean (no copy of a parent that may hold threads or big arrays) and,
    # with the main module hidden, import only this module (not the stage's torch imports)
    context = multiprocessing.get_context("spawn")
    with _main_hidden(), ProcessPoolExecutor(n_workers, mp_context=context) as pool:
        pending: set[Future] = set()
        try:
            for chunk in chunks:
                pending.add(pool.submit(_decode_chunk, chunk))
                if len(pending) >= 2 * n_workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        modes.update(future.result())
            for future in pending:
                modes.update(future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return dict(modes)


@contextmanager
def _main_hidden() -> Iterator[None]:
    """Hide `__main__`'s file and spec while workers start, so that spawn does not re-run the
    caller's script (or `python -m` module) in every worker; workers need only this module."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if k in main.__dict__}
    main.__dict__["__spec__"] = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _decode_chunk(chunk: _Chunk) -> dict[str, int]:
    """Worker: decode a chunk's images and write each at its row of the `.npy`."""
    modes: Counter[str] = Counter()
    fd = os.open(chunk.path, os.O_WRONLY)
    try:
        for k, (item, name) in enumerate(zip(chunk.items, chunk.names, strict=True)):
            arr, mode = decode_image(item, name=name, spec=chunk.spec)
            if arr.shape != chunk.shape:
                raise InputDataError(
                    f"{name}: image is {arr.shape[1]}x{arr.shape[0]}, expected "
                    f"{chunk.shape[1]}x{chunk.shape[0]} like the first image; set "
                    "data.image_size to resize every image to one size"
                )
            write_rows(fd, chunk.header_len, chunk.start + k, arr[None])
            modes[mode] += 1
    finally:
        os.close(fd)
    return dict(modes)
