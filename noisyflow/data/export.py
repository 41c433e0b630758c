"""`noisyflow export`: the suggested labels written back in the format the data came in.

Inputs: a prepared directory (its meta.json describes the source) and the label-issues table
(`index,path,given_label,given_class,corrected_label,corrected_class,label_quality,
is_label_issue,prototype_label`, one row per training sample, `index` = the source row).

- csv (a CSV source): the user's CSV with every column and row kept, plus `corrected_label`
  (names if the CSV used names, else integers), `label_quality` and `is_label_issue`. Rows that
  were not trained on (test, validation, beyond data.subset) keep their own label as the
  corrected one and leave the two scores blank. Loading the result as a `csv` source with
  `label_column: corrected_label` (and the same data.root) gives the corrected labels.
- csv (any other source): `corrected_labels.csv` with `index,label` first (plus path, the given
  label and the scores), one row per source row used, so it serves as `data.labels_path`.
- imagefolder: `moves.csv` (path, from_class, to_class, scores) for every suggested change and,
  opt-in, a relabelled copy of the folder made of hard links (copies across file systems).
`only_issues` keeps only rows flagged as label issues. The user's files are never written: the
output folder may not lie inside the source folder, and existing copies are not overwritten.
"""

from __future__ import annotations

import csv
import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisyflow.data.sources.base import resolve
from noisyflow.data.sources.csvfile import read_table, where
from noisyflow.data.sources.imagefolder import list_folder
from noisyflow.errors import InputDataError
from noisyflow.io import atomic_outputs, load_npz, read_json

ADDED_COLUMNS = ("corrected_label", "label_quality", "is_label_issue")
FORMATS = ("csv", "imagefolder")
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


@dataclass(frozen=True)
class Issues:
    """The label-issues table as arrays, rows in table order."""

    index: np.ndarray
    path: np.ndarray
    given: np.ndarray
    corrected: np.ndarray
    quality: np.ndarray
    is_issue: np.ndarray


@dataclass(frozen=True)
class ExportResult:
    """files: what was written; rows: rows written (csv) or moves listed; changed: rows whose
    suggested label differs from the given one; linked / copied: files of the relabelled copy."""

    files: tuple[Path, ...]
    rows: int
    changed: int
    linked: int = 0
    copied: int = 0


def read_issues(path: str | Path, *, num_classes: int) -> Issues:
    """Parse and check the label-issues CSV (InputDataError naming the file and data row)."""
    path = Path(path)
    shown = str(path)
    if not path.is_file():
        raise InputDataError(f"{shown}: label issues not found (run the correct stage)")
    required = ("index", "given_label", "corrected_label", "label_quality", "is_label_issue")
    table = read_table(path, shown=shown, required=required)
    cols = {c: table.column(c) for c in required}
    paths = table.column("path") if "path" in table.header else [""] * len(table.rows)
    out = {k: np.empty(len(table.rows), dtype=np.int64) for k in ("index", "given", "corrected")}
    quality = np.empty(len(table.rows))
    flags = np.empty(len(table.rows), dtype=bool)
    for i in range(len(table.rows)):
        at = where(shown, i, table.lines[i])
        try:
            out["index"][i] = int(cols["index"][i])
            out["given"][i] = int(cols["given_label"][i])
            out["corrected"][i] = int(cols["corrected_label"][i])
            quality[i] = float(cols["label_quality"][i])
        except ValueError:
            raise InputDataError(
                f"{at}: expected integer index/given_label/corrected_label and a numeric "
                "label_quality"
            ) from None
        flag = cols["is_label_issue"][i].lower()
        if flag not in _TRUE | _FALSE:
            raise InputDataError(f"{at}: is_label_issue {flag!r}, expected true or false")
        flags[i] = flag in _TRUE
        for key in ("given", "corrected"):
            if not 0 <= out[key][i] < num_classes:
                raise InputDataError(
                    f"{at}: {key}_label {out[key][i]} outside 0..{num_classes - 1}"
                )
    if len(np.unique(out["index"])) != len(out["index"]):
        raise InputDataError(f"{shown}: an index appears twice; expected one row per sample")
    return Issues(
        out["index"],
        np.asarray(paths, dtype=str),
        out["given"],
        out["corrected"],
        quality,
        flags,
    )


def export_labels(
    prepared_dir: str | Path,
    issues_path: str | Path,
    out_dir: str | Path,
    *,
    fmt: str | None = None,
    only_issues: bool = False,
    link_copy: bool = False,
    base: str | Path = ".",
) -> ExportResult:
    """Write the corrected labels of `issues_path` for the source described in `prepared_dir`.

    fmt: "csv" | "imagefolder" (default: imagefolder for an image folder, else csv).
    link_copy: imagefolder only, also build a relabelled copy of the folder from hard links.
    base: the project folder the source's paths in meta.json are relative to.
    """
    prepared_dir, base, out_dir = Path(prepared_dir), Path(base), Path(out_dir)
    meta = read_json(prepared_dir / "meta.json")
    source, classes = meta["source"], list(meta["classes"])
    kind = source["type"]
    fmt = fmt or ("imagefolder" if kind == "imagefolder" else "csv")
    if fmt not in FORMATS:
        raise InputDataError(f"--format: {fmt!r}, expected one of {', '.join(FORMATS)}")
    if fmt == "imagefolder" and kind != "imagefolder":
        raise InputDataError(
            f"--format imagefolder: the data came from a {kind!r} source; use --format csv"
        )
    if link_copy and fmt != "imagefolder":
        raise InputDataError("--link-copy: only for --format imagefolder")
    issues = read_issues(issues_path, num_classes=len(classes))
    _check_against_prepared(issues, prepared_dir, issues_path)
    _refuse_source_folders(out_dir, meta, base)
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "imagefolder":
        return _export_folder(issues, meta, out_dir, base, only_issues, link_copy)
    if kind == "csv":
        return _export_user_csv(issues, meta, out_dir, base, only_issues)
    return _export_label_file(issues, meta, prepared_dir, out_dir, only_issues)


def _check_against_prepared(issues: Issues, prepared_dir: Path, issues_path: str | Path) -> None:
    """The table must describe this prepared data: same rows, same given labels."""
    train = load_npz(prepared_dir / "train.npz", required=("labels", "index"))
    position = {int(r): k for k, r in enumerate(train["index"])}
    for i, row in enumerate(issues.index):
        k = position.get(int(row))
        if k is None or int(train["labels"][k]) != int(issues.given[i]):
            raise InputDataError(
                f"{issues_path}: data row {i + 1} (index {int(row)}) does not match the "
                f"prepared training data in {prepared_dir}; expected label issues computed from "
                "it (rerun dvc repro)"
            )


def _refuse_source_folders(out_dir: Path, meta: dict, base: Path) -> None:
    """Refuse the folders holding the user's data: the CSV's / npz's folder and data.root, and
    anywhere inside an image folder (whose listing is recursive)."""
    source = meta["source"]
    out_real = Path(os.path.realpath(out_dir))
    for key in ("path", "root", "test_path"):
        if not source.get(key):
            continue
        place = resolve(source[key], base)
        folder = Path(os.path.realpath(place if place.is_dir() else place.parent))
        inside = source["type"] == "imagefolder" and folder in out_real.parents
        if out_real == folder or inside:
            raise InputDataError(
                f"{out_dir}: {'inside' if inside else 'is'} the source folder {folder}; export "
                "never writes among the user's data, expected an output folder elsewhere (--out)"
            )


def _label_text(label: int, classes: list[str], label_format: str) -> str:
    return classes[label] if label_format == "names" else str(label)


def _selected(issues: Issues, only_issues: bool) -> np.ndarray:
    return issues.is_issue if only_issues else np.ones(len(issues.index), dtype=bool)


def _export_user_csv(
    issues: Issues, meta: dict, out_dir: Path, base: Path, only_issues: bool
) -> ExportResult:
    source, classes = meta["source"], list(meta["classes"])
    cols = source["csv"]
    csv_path = resolve(source["path"], base)
    table = read_table(
        csv_path, shown=str(csv_path), required=(cols["path_column"], cols["label_column"])
    )
    if len(table.rows) < source["rows"]:
        raise InputDataError(
            f"{csv_path}: {len(table.rows)} data rows, prepared from {source['rows']}; the CSV "
            "changed since prepare (rerun dvc repro)"
        )
    paths = table.column(cols["path_column"])
    for i, row in enumerate(issues.index):
        if row >= len(paths) or paths[row] != issues.path[i]:
            raise InputDataError(
                f"{csv_path}: data row {int(row) + 1} lists "
                f"{paths[row] if row < len(paths) else 'nothing'!r}, the label issues "
                f"{issues.path[i]!r}; the CSV changed since prepare (rerun dvc repro)"
            )
    header = list(table.header)
    for name in ADDED_COLUMNS:
        if name not in header:
            header.append(name)
    label_j = table.header.index(cols["label_column"])
    by_row = {int(r): i for i, r in enumerate(issues.index)}
    keep = _selected(issues, only_issues)
    rows_out = []
    for r, cells in enumerate(table.rows):
        values = dict(zip(table.header, cells, strict=True))
        i = by_row.get(r)
        if i is None:
            if only_issues:
                continue
            values.update(
                corrected_label=cells[label_j].strip(), label_quality="", is_label_issue=""
            )
        else:
            if not keep[i]:
                continue
            values.update(
                corrected_label=_label_text(
                    int(issues.corrected[i]), classes, source["label_format"]
                ),
                label_quality=f"{issues.quality[i]:.6g}",
                is_label_issue="true" if issues.is_issue[i] else "false",
            )
        rows_out.append([values[h] for h in header])
    target = out_dir / f"{csv_path.stem}.corrected.csv"
    _write_csv(target, header, rows_out, table.delimiter)
    changed = int((issues.corrected != issues.given)[keep].sum())
    return ExportResult((target,), len(rows_out), changed)


def _export_label_file(
    issues: Issues, meta: dict, prepared_dir: Path, out_dir: Path, only_issues: bool
) -> ExportResult:
    """index,label (+ path, given label, scores) for every source row used: a data.labels_path."""
    source, classes = meta["source"], list(meta["classes"])
    fmt = source["label_format"]
    keep = _selected(issues, only_issues)
    rows: dict[int, list[str]] = {}
    for i in np.flatnonzero(keep):
        rows[int(issues.index[i])] = [
            _label_text(int(issues.corrected[i]), classes, fmt),
            issues.path[i],
            _label_text(int(issues.given[i]), classes, fmt),
            f"{issues.quality[i]:.6g}",
            "true" if issues.is_issue[i] else "false",
        ]
    if not only_issues:  # the rows not trained on keep their labels, so every row is listed
        splits = ["val"] + (["test"] if meta["split"]["test_from"] == "held_out" else [])
        for name in splits:
            if not (prepared_dir / f"{name}.npz").is_file():
                continue
            arrays = load_npz(prepared_dir / f"{name}.npz", required=("labels", "index"))
            paths = arrays.get("paths", np.full(len(arrays["index"]), "", dtype=str))
            for row, label, path in zip(arrays["index"], arrays["labels"], paths, strict=True):
                text = _label_text(int(label), classes, fmt)
                rows[int(row)] = [text, str(path), text, "", ""]
    header = ["index", "label", "path", "given_label", "label_quality", "is_label_issue"]
    body = [[str(r), *rows[r]] for r in sorted(rows)]
    target = out_dir / "corrected_labels.csv"
    _write_csv(target, header, body, ",")
    changed = int((issues.corrected != issues.given)[keep].sum())
    return ExportResult((target,), len(body), changed)


def _export_folder(
    issues: Issues, meta: dict, out_dir: Path, base: Path, only_issues: bool, link_copy: bool
) -> ExportResult:
    source, classes = meta["source"], list(meta["classes"])
    root = resolve(source["path"], base)
    listing = list_folder(root, shown=str(root))
    if listing.classes != tuple(classes) or len(listing.paths) < source["rows"]:
        raise InputDataError(f"{root}: the folder changed since prepare (rerun dvc repro)")
    for i, row in enumerate(issues.index):
        if row >= len(listing.paths) or listing.paths[row] != issues.path[i]:
            raise InputDataError(
                f"{root}: index {int(row)} is no longer {issues.path[i]!r}; the folder changed "
                "since prepare (rerun dvc repro)"
            )
    move = (issues.corrected != issues.given) & _selected(issues, only_issues)
    target_class = np.asarray(listing.labels, dtype=np.int64)
    target_class[issues.index[move]] = issues.corrected[move]
    copy_name = f"{root.name}_relabelled"
    copy_root = out_dir / copy_name
    if link_copy and copy_root.exists():
        raise InputDataError(f"{copy_root}: exists; remove it or choose another --out")

    new_paths = _relabelled_paths(listing.paths, listing.labels, target_class, classes)
    header = ["path", "from_class", "to_class", "label_quality", "is_label_issue"]
    if link_copy:
        header.append("copy_path")
    body = []
    for i in np.flatnonzero(move):
        row = int(issues.index[i])
        line = [
            issues.path[i],
            classes[int(issues.given[i])],
            classes[int(issues.corrected[i])],
            f"{issues.quality[i]:.6g}",
            "true" if issues.is_issue[i] else "false",
        ]
        if link_copy:
            line.append(f"{copy_name}/{new_paths[row]}")
        body.append(line)
    moves = out_dir / "moves.csv"
    linked = copied = 0
    targets = [moves, copy_root] if link_copy else [moves]
    with atomic_outputs(*targets) as temps:
        _write_csv(temps[0], header, body, ",", atomic=False)
        if link_copy:
            linked, copied = _link_tree(listing.files, new_paths, temps[1])
    files = (moves, copy_root) if link_copy else (moves,)
    return ExportResult(files, len(body), int(move.sum()), linked, copied)


def _relabelled_paths(
    paths: tuple[str, ...], labels: tuple[int, ...], target: np.ndarray, classes: list[str]
) -> list[str]:
    """Each file's path in the relabelled copy: `<new class>/<path inside its class>`, renamed
    `<stem>__from_<old class><ext>` when the name is already taken."""
    taken = {p for p, old, new in zip(paths, labels, target, strict=True) if old == new}
    out = []
    for path, old, new in zip(paths, labels, target, strict=True):
        if old == new:
            out.append(path)
            continue
        inner = path.split("/", 1)[1]
        candidate = f"{classes[new]}/{inner}"
        if candidate in taken:
            stem, dot, ext = inner.rpartition(".")
            candidate = f"{classes[new]}/{stem}__from_{classes[old]}{dot}{ext}"
        taken.add(candidate)
        out.append(candidate)
    return out


def _link_tree(files: tuple[str, ...], rel_paths: list[str], dest: Path) -> tuple[int, int]:
    """Hard-link each file to dest/rel (a copy where linking is impossible)."""
    linked = copied = 0
    for src, rel in zip(files, rel_paths, strict=True):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, target)
            linked += 1
        except OSError as exc:
            if exc.errno not in (
                errno.EXDEV,
                errno.EPERM,
                errno.EMLINK,
                errno.ENOTSUP,
                errno.EACCES,
            ):
                raise
            shutil.copy2(src, target)
            copied += 1
    return linked, copied


def _write_csv(
    path: Path, header: list[str], rows: list[list[str]], delimiter: str, *, atomic: bool = True
) -> None:
    tmp = path.with_name(f".{path.name}.tmp") if atomic else path
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    if atomic:
        os.replace(tmp, path)
