"""The prepare step: a user's source -> memory-mappable splits that point back at the source.

`prepare_dataset` loads the source (and a separate test set), replaces labels from
`data.labels_path`, keeps the first `data.subset` rows, splits (stratified test unless a test
set is given, then a stratified noisy validation split out of train), injects the benchmark
noise into the train and val labels, decodes the images once (cached, in parallel) and writes

    train_x.npy, test_x.npy[, val_x.npy]   (n, H, W, C) uint8, opened with mmap_mode="r"
    train.npz, test.npz[, val.npz]         labels, index (the source row), true_labels (-1 =
                                           unknown; absent when nothing is known), paths (files)
    meta.json                              classes, shapes, counts, noise, truth, the source's
                                           description (what `export` needs), preprocessing,
                                           decode counts per original image mode

Rows of every split are sorted by source row. Everything cheap is checked before any image is
decoded, and the outputs appear only when all of them are complete (nothing is left behind on
an error). Same params and inputs give byte-identical files; timings and cache hits, which vary
between runs, are returned (and written to `stats_path`) but kept out of meta.json so that an
unchanged result leaves downstream DVC stages up to date.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from noisyflow.data.decode import DecodeStats, decode_to_cache, transform_array
from noisyflow.data.images import Preprocess
from noisyflow.data.sources import SourceData, has_test_source, load_source
from noisyflow.data.sources.base import check_labels, display, resolve
from noisyflow.data.sources.csvfile import parse_labels, read_table, where
from noisyflow.data.split import stratified_split
from noisyflow.data.store import copy_rows, read_rows, write_npz
from noisyflow.errors import InputDataError
from noisyflow.io import atomic_outputs, load_npz, read_json, write_json
from noisyflow.noise import inject_noise, transition_matrix
from noisyflow.types import Prepared, Split

if TYPE_CHECKING:
    from noisyflow.config import DataParams

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")


def prepare_dataset(
    data: DataParams,
    out_dir: str | Path,
    *,
    cache_dir: str | Path,
    workers: int = 0,
    base: str | Path = ".",
    stats_path: str | Path | None = None,
) -> Prepared:
    """Prepare `data` into `out_dir` (replaced only on success) and return it memory-mapped.

    cache_dir: where decoded images are cached between runs (keep it out of DVC's outputs).
    workers:   decoding processes (runtime.decode_workers; 0 = every available core).
    base:      the project folder that relative paths in `data` are relative to.
    stats_path: optional JSON file for the run's decode timings and cache hits.
    Raises InputDataError (naming the file, row and expectation) for any bad input.
    """
    base = Path(base)
    refuse_outputs_among_inputs(data, base, out_dir=Path(out_dir), cache_dir=Path(cache_dir))
    source = load_source(data, split="train", base=base)
    if data.subset and data.subset > len(source):
        raise InputDataError(
            f"data.subset: {data.subset} exceeds the {len(source)} images of {source.origin}"
        )
    given = source.labels
    if data.labels_path:
        given = read_labels_file(data, base, source, kept=data.subset or len(source))
    truth = source.labels.copy() if source.labels_are_clean else source.true_labels
    if data.subset:
        source, given = source.head(data.subset), given[: data.subset]
        truth = None if truth is None else truth[: data.subset]

    test_source = None
    if has_test_source(data):
        test = load_source(data, split="test", base=base)
        test_source = align_test_classes(test, source, data.source)
    positions = split_positions(data, given, source.classes, separate_test=test_source is not None)

    noise = data.noise
    noisy_rows = np.sort(np.concatenate([positions["train"], positions.get("val", [])])).astype(
        np.int64
    )
    injected = noise.type != "none" and noise.rate > 0
    noise_kw = {
        "noise_type": noise.type,
        "rate": noise.rate,
        "seed": noise.seed,
        "include_true_class": noise.include_true_class,
        "pairs": noise.pairs,
        "noise_map": noise.map,
        "instance_std": noise.instance_std,
    }
    before_noise = given
    if noise.type != "instance":  # cheap: check before decoding anything
        given = _with_noise(given, noisy_rows, source.num_classes, noise_kw, None)

    out_dir = Path(out_dir)
    with atomic_outputs(out_dir) as (tmp,):
        tmp.mkdir()
        pixels, stats = source_pixels(source, data, cache_dir=cache_dir, workers=workers)
        run_stats = {"train": stats}
        if noise.type == "instance":
            images = _Rows(pixels, noisy_rows)
            given = _with_noise(given, noisy_rows, source.num_classes, noise_kw, images)
        if injected:  # where nothing better is known, the labels before our noise are the truth
            known = truth.copy() if truth is not None else np.full(len(given), -1, np.int64)
            unknown = noisy_rows[known[noisy_rows] < 0]
            known[unknown] = before_noise[unknown]
            truth = known
        shape = _shape(pixels)

        for name in ("train", "val"):
            if name in positions:
                rows = positions[name]
                _write_split(tmp, name, pixels, rows, given, source, truth)
        if test_source is None:
            _write_split(tmp, "test", pixels, positions["test"], given, source, truth)
            test_counts, test_truth_rows = None, None
        else:
            test_pixels, test_stats = source_pixels(
                test_source, data, cache_dir=cache_dir, workers=workers
            )
            run_stats["test"] = test_stats
            if _shape(test_pixels) != shape:
                raise InputDataError(
                    f"{test_source.origin}: test images are {_shape(test_pixels)}, training "
                    f"images {shape} (H, W, C); set data.image_size / data.channels"
                )
            test_truth = (
                test_source.labels.copy()
                if test_source.labels_are_clean
                else test_source.true_labels
            )
            rows = np.arange(len(test_source), dtype=np.int64)
            _write_split(
                tmp, "test", test_pixels, rows, test_source.labels, test_source, test_truth
            )
            test_counts = np.bincount(test_source.labels, minlength=source.num_classes)
            test_truth_rows = 0 if test_truth is None else int((test_truth >= 0).sum())

        meta = build_meta(
            data,
            base,
            source=source,
            test_source=test_source,
            positions=positions,
            given=given,
            truth=truth,
            shape=shape,
            stats=run_stats,
            test_counts=test_counts,
            test_truth_rows=test_truth_rows,
        )
        write_json(tmp / "meta.json", meta)

    run = {name: vars(s) for name, s in run_stats.items()}
    if stats_path is not None:
        Path(stats_path).parent.mkdir(parents=True, exist_ok=True)
        write_json(stats_path, run)
    prepared = load_prepared(out_dir)
    prepared.meta["decode_run"] = run
    return prepared


def refuse_outputs_among_inputs(
    data: DataParams, base: Path, *, out_dir: Path, cache_dir: Path
) -> None:
    """The outputs and the cache may not lie inside an image folder or data.root: they would
    become part of the next listing (or sit among the user's files)."""
    folders = []
    if data.source == "imagefolder":
        folders += [p for p in (data.path, data.test_path) if p]
    if data.source == "csv" and data.root:
        folders.append(data.root)
    for folder in folders:
        real = Path(os.path.realpath(resolve(folder, base)))
        for what, path in (("the prepared output", out_dir), ("the decode cache", cache_dir)):
            target = Path(os.path.realpath(path))
            if target == real or real in target.parents:
                raise InputDataError(
                    f"{path}: {what} lies inside the data folder {display(folder, base)}; "
                    "expected a place outside the user's data"
                )


def read_labels_file(data: DataParams, base: Path, source: SourceData, *, kept: int) -> np.ndarray:
    """data.labels_path: a .npy of one int per source row, or a .csv of index,label (names or
    ints) covering at least the first `kept` rows. Returns labels for every source row (rows
    the CSV leaves out keep the source's label)."""
    path, shown = resolve(data.labels_path, base), display(data.labels_path, base)
    n, K = len(source), source.num_classes
    if not path.is_file():
        raise InputDataError(
            f"{shown}: not found; expected a .csv or .npy label file (data.labels_path)"
        )
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            labels = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputDataError(f"{shown}: not a readable .npy without pickle ({exc})") from None
        if labels.ndim == 1 and len(labels) != n:
            raise InputDataError(
                f"{shown}: {len(labels)} labels, expected {n} (one per row of {source.origin})"
            )
        check_labels(labels, K, origin=shown)
        return labels.astype(np.int64)
    if suffix != ".csv":
        raise InputDataError(f"{shown}: expected a .csv (index,label) or .npy label file")
    table = read_table(path, shown=shown, required=("index", "label"))
    labels = source.labels.copy()
    seen = np.full(n, -1, dtype=np.int64)
    values = table.column("label")
    parsed, _, _ = parse_labels(values, source.classes, table=table, shown=shown, column="label")
    for i, raw in enumerate(table.column("index")):
        at = where(shown, i, table.lines[i])
        try:
            row = int(raw)
        except ValueError:
            raise InputDataError(f"{at}: index {raw!r} is not an integer") from None
        if not 0 <= row < n:
            raise InputDataError(
                f"{at}: unknown index {row}; expected a source row 0..{n - 1} of {source.origin}"
            )
        if seen[row] >= 0:
            raise InputDataError(f"{at}: index {row} repeats data row {seen[row] + 1}")
        if parsed[i] < 0:
            raise InputDataError(f"{at}: empty label; expected a class name or integer")
        seen[row] = i
        labels[row] = parsed[i]
    missing = np.flatnonzero(seen[:kept] < 0)
    if missing.size:
        raise InputDataError(
            f"{shown}: no label for index {int(missing[0])} ({missing.size} of the {kept} rows "
            "used are missing); expected one row per source row"
        )
    return labels


def align_test_classes(test: SourceData, train: SourceData, source_type: str) -> SourceData:
    """The test set numbered like the training classes, which it must share (a CSV test set
    labelled with names may use a subset of them)."""
    if test.classes == train.classes:
        return test
    extra = [c for c in test.classes if c not in train.classes]
    missing = [c for c in train.classes if c not in test.classes]
    names = test.label_format == "names" and train.label_format == "names"
    if source_type == "csv" and names and not extra:
        remap = np.asarray([train.classes.index(c) for c in test.classes], dtype=np.int64)
        truth = test.true_labels
        if truth is not None:
            truth = np.where(truth >= 0, remap[np.maximum(truth, 0)], -1)
        return replace(test, labels=remap[test.labels], classes=train.classes, true_labels=truth)
    detail = [
        f"{what}: {', '.join(c)}"
        for what, c in (("not in training", extra), ("missing", missing))
        if c
    ]
    raise InputDataError(
        f"{test.origin}: test classes {list(test.classes)} differ from the training classes "
        f"{list(train.classes)} ({'; '.join(detail) or 'different order'}); expected the same "
        "class names"
    )


def split_positions(
    data: DataParams, labels: np.ndarray, classes: tuple[str, ...], *, separate_test: bool
) -> dict[str, np.ndarray]:
    """Positions (in source order) of train, val (when data.val_size) and test (no test set)."""
    out: dict[str, np.ndarray] = {}
    train = np.arange(len(labels), dtype=np.int64)
    if not separate_test:
        train, out["test"] = stratified_split(
            labels, data.test_size, data.split_seed, classes=classes
        )
    if data.val_size:
        kept, val = stratified_split(
            labels[train], data.val_size, data.split_seed, key="data.val_size", classes=classes
        )
        train, out["val"] = train[kept], train[val]
    out["train"] = train
    return out


def source_pixels(
    src: SourceData, data: DataParams, *, cache_dir: str | Path, workers: int
) -> tuple[np.ndarray | Path, DecodeStats]:
    """Every image of `src` as uint8 (N, H, W, C): an array (array sources) or a cached `.npy`."""
    size = None if data.image_size is None else (data.image_size, data.image_size)
    if src.images is not None:
        channels = data.channels or src.images.shape[-1]
        spec = Preprocess(size, data.resize, channels, data.max_pixels)
        return transform_array(src.images, spec)
    spec = Preprocess(size, data.resize, data.channels or 3, data.max_pixels)
    return decode_to_cache(src.encoded, spec, cache_dir=cache_dir, workers=workers)


def build_meta(
    data: DataParams,
    base: Path,
    *,
    source: SourceData,
    test_source: SourceData | None,
    positions: dict[str, np.ndarray],
    given: np.ndarray,
    truth: np.ndarray | None,
    shape: tuple[int, int, int],
    stats: dict[str, DecodeStats],
    test_counts: np.ndarray | None,
    test_truth_rows: int | None,
) -> dict[str, Any]:
    """meta.json: deterministic for the same inputs (no timings)."""
    K = source.num_classes
    train = positions["train"]
    counts = {name: int(len(rows)) for name, rows in positions.items()}
    class_counts = {
        name: np.bincount(given[rows], minlength=K).tolist() for name, rows in positions.items()
    }
    truth_rows = {
        name: 0 if truth is None else int((truth[rows] >= 0).sum())
        for name, rows in positions.items()
    }
    if test_source is not None:
        counts["test"] = len(test_source)
        class_counts["test"] = test_counts.tolist()
        truth_rows["test"] = test_truth_rows
    noise = data.noise
    known = train[truth[train] >= 0] if truth is not None else train[:0]
    realised = transition = None
    if known.size:
        realised = round(float((given[known] != truth[known]).mean()), 6)
        transition = transition_matrix(truth[known], given[known], K).round(4).tolist()
    val_realised = None
    if truth is not None and "val" in positions:
        val_known = positions["val"][truth[positions["val"]] >= 0]
        if val_known.size:
            val_realised = round(float((given[val_known] != truth[val_known]).mean()), 6)
    truth_level, truth_note = describe_truth(
        source, data, n_train=len(train), known=int(known.size)
    )
    csv_part = None
    if data.source == "csv":
        csv_part = {
            "path_column": data.csv.path_column,
            "label_column": data.csv.label_column,
            "true_label_column": data.csv.true_label_column,
        }
    root = data.root
    if data.source == "csv" and not root:
        root = str(Path(data.path).parent)
    if data.source == "imagefolder":
        root = data.path
    return {
        "format_version": FORMAT_VERSION,
        "classes": list(source.classes),
        "num_classes": K,
        "image_shape": list(shape),
        "counts": counts,
        "class_counts": class_counts,
        "truth": truth_level,
        "truth_note": truth_note,
        "truth_rows": truth_rows,
        "noise": {
            "type": noise.type,
            "rate": noise.rate,
            "seed": noise.seed,
            "include_true_class": noise.include_true_class,
            "map": noise.map,
            "pairs": [list(p) for p in noise.pairs],
            "instance_std": noise.instance_std,
            "realised_rate": realised,
            "val_realised_rate": val_realised,
            "transition_matrix": transition,
        },
        "split": {
            "test_from": "test_path"
            if data.test_path
            else ("pack" if test_source is not None else "held_out"),
            "test_size": counts["test"],
            "val_size": counts.get("val", 0),
            "split_seed": data.split_seed,
        },
        "source": {
            "type": data.source,
            "path": data.path,
            "root": root,
            "csv": csv_part,
            "test_path": data.test_path,
            "labels_path": data.labels_path,
            "subset": data.subset,
            "rows": len(source),
            "label_format": source.label_format,
            "labels_are_clean": source.labels_are_clean,
            "has_paths": source.paths is not None,
        },
        "preprocessing": {
            "image_size": data.image_size,
            "size": [shape[0], shape[1]],
            "resize": data.resize,
            "channels": shape[2],
            "max_pixels": data.max_pixels,
        },
        "decode": {name: s.counts() for name, s in stats.items()},
    }


def describe_truth(
    source: SourceData, data: DataParams, *, n_train: int, known: int
) -> tuple[str, str]:
    """("all" | "partial" | "none", a sentence saying which scores the run can report)."""
    if source.labels_are_clean:
        origin = "the curated source labels" + (
            " (data.labels_path replaced the labels trained on)" if data.labels_path else ""
        )
    elif data.source == "csv" and data.csv.true_label_column:
        origin = f"the audited column {data.csv.true_label_column!r}"
    else:
        origin = "no trusted labels"
    if data.noise.type != "none" and data.noise.rate > 0 and not source.labels_are_clean:
        origin += ", and the labels before the injected noise where nothing better is known"
    if known == n_train:
        return "all", (
            f"Truth is known for all {n_train} training rows ({origin}): noise detection and "
            "label correction are scored on every row."
        )
    if known:
        return "partial", (
            f"Truth is known for {known} of {n_train} training rows ({origin}): detection and "
            "correction are scored on those rows only."
        )
    return "none", (
        "No trusted labels: label issues are reported but detection and correction cannot be "
        "scored; test accuracy is measured against the test labels as given."
    )


def load_prepared(directory: str | Path) -> Prepared:
    """Open a prepared directory: arrays memory-mapped read-only, checked against meta.json."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputDataError(f"{directory}: prepared data not found (run the prepare stage)")
    meta_path = directory / "meta.json"
    meta = read_json(meta_path)
    try:
        classes = tuple(str(c) for c in meta["classes"])
        shape = tuple(int(s) for s in meta["image_shape"])
        counts = {k: int(v) for k, v in meta["counts"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise InputDataError(f"{meta_path}: missing or malformed field {exc}") from None
    K = len(classes)
    splits: dict[str, Split] = {}
    for name in SPLITS:
        if name not in counts:
            if name == "val":
                continue
            raise InputDataError(f"{meta_path}: no count for split {name!r}")
        splits[name] = _read_split(directory, name, counts[name], shape, K)
    return Prepared(splits["train"], splits["test"], classes, splits.get("val"), meta)


def _read_split(directory: Path, name: str, n: int, shape: tuple[int, ...], K: int) -> Split:
    x_path, npz_path = directory / f"{name}_x.npy", directory / f"{name}.npz"
    if not x_path.is_file():
        raise InputDataError(f"{x_path}: missing; expected the {name} images (rerun prepare)")
    try:
        x = np.load(x_path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputDataError(f"{x_path}: not a readable .npy ({exc})") from None
    if x.dtype != np.uint8 or tuple(x.shape) != (n, *shape):
        raise InputDataError(
            f"{x_path}: {x.dtype} {tuple(x.shape)}, expected uint8 {(n, *shape)} per meta.json"
        )
    arrays = load_npz(npz_path, required=("labels", "index"))
    for key, arr in arrays.items():
        if len(arr) != n:
            raise InputDataError(f"{npz_path}: '{key}' has {len(arr)} rows, expected {n}")
    labels = arrays["labels"].astype(np.int64)
    if n and (labels.min() < 0 or labels.max() >= K):
        raise InputDataError(f"{npz_path}: labels outside 0..{K - 1}")
    truth = arrays.get("true_labels")
    if truth is not None:
        truth = truth.astype(np.int64)
        if n and (truth.min() < -1 or truth.max() >= K):
            raise InputDataError(f"{npz_path}: true_labels outside -1..{K - 1}")
    return Split(
        x=x,
        labels=labels,
        index=arrays["index"].astype(np.int64),
        true_labels=truth,
        paths=arrays.get("paths"),
    )


def _write_split(
    out: Path,
    name: str,
    pixels: np.ndarray | Path,
    rows: np.ndarray,
    labels: np.ndarray,
    source: SourceData,
    truth: np.ndarray | None,
) -> None:
    copy_rows(pixels, rows, out / f"{name}_x.npy")
    arrays = {"labels": labels[rows].astype(np.int64), "index": source.index[rows]}
    if truth is not None and (truth[rows] >= 0).any():
        arrays["true_labels"] = truth[rows].astype(np.int64)
    if source.paths is not None:
        arrays["paths"] = source.paths[rows]
    write_npz(out / f"{name}.npz", arrays)


def _with_noise(
    given: np.ndarray, rows: np.ndarray, K: int, kw: dict[str, Any], images: Any
) -> np.ndarray:
    out = given.copy()
    out[rows] = inject_noise(given[rows], K, images=images, **kw)
    return out


def _shape(pixels: np.ndarray | Path) -> tuple[int, int, int]:
    if isinstance(pixels, np.ndarray):
        return tuple(int(s) for s in pixels.shape[1:])
    view = np.load(pixels, mmap_mode="r", allow_pickle=False)
    shape = tuple(int(s) for s in view.shape[1:])
    del view
    return shape


class _Rows:
    """Rows `rows` of an array or `.npy`, sliced like an array (a `.npy` by positioned reads)."""

    def __init__(self, pixels: np.ndarray | Path, rows: np.ndarray) -> None:
        self.pixels, self.rows = pixels, rows
        self.shape = (len(rows), *_shape(pixels))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: slice) -> np.ndarray:
        picked = self.rows[item]
        if isinstance(self.pixels, np.ndarray):
            return self.pixels[picked]
        return read_rows(self.pixels, picked)
