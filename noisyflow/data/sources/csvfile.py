"""A CSV label file, as annotation tools export: one row per image, a path column and a label column.

- Paths are relative to data.root (default: the CSV's folder); absolute paths must lie inside it.
- Labels are class names or integers. With data.classes set, names must be among them (and
  integers index them); without it, the classes are the sorted distinct names, and integer
  labels are refused (class names are never inferred from the largest label).
- An optional data.csv.true_label_column holds verified labels (blank = unaudited -> -1).
- Delimiter: comma, or semicolon / tab when the header only splits into the named columns with
  it (spreadsheet exports). UTF-8, with or without a byte-order mark.
Rows are counted as a user counts them: "data row 1" is the first row after the header; messages
also give the file line. `index` is the data row counted from 0.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from noisyflow.data.images import resolve_inside
from noisyflow.data.sources.base import (
    EncodedImages,
    SourceData,
    check_not_empty,
    class_names,
    display,
    require_file,
    resolve,
)
from noisyflow.errors import InputDataError

if TYPE_CHECKING:
    from noisyflow.config import DataParams

DELIMITERS = (",", ";", "\t")
_INT = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class Table:
    """A CSV's cells as strings: header, delimiter, rows and each row's (last) file line."""

    header: tuple[str, ...]
    delimiter: str
    rows: tuple[tuple[str, ...], ...]
    lines: tuple[int, ...]

    def column(self, name: str) -> list[str]:
        j = self.header.index(name)
        return [row[j].strip() for row in self.rows]


def where(shown: str, row: int, line: int) -> str:
    """`labels.csv: data row 3 (line 4)` for the row counted from 0."""
    return f"{shown}: data row {row + 1} (line {line}; rows counted from 1 after the header)"


def read_table(path: Path, *, shown: str, required: tuple[str, ...]) -> Table:
    """Read a CSV whose header must contain `required`; rows must have the header's width."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputDataError(
            f"{shown}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = ","
    for candidate in DELIMITERS:
        fields = next(csv.reader([first], delimiter=candidate), [])
        if required and required[0] in [f.strip() for f in fields]:
            delimiter = candidate
            break
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
    try:
        header = tuple(f.strip() for f in next(reader, []))
        rows, lines = [], []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue  # blank line
            rows.append(tuple(cells))
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise InputDataError(f"{shown}: line {reader.line_num}: malformed CSV ({exc})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise InputDataError(
            f"{shown}: missing column(s) {', '.join(repr(c) for c in missing)}; found "
            f"{', '.join(repr(h) for h in header) or 'no header'} (set data.csv.path_column / "
            "label_column to the names in the header)"
        )
    dupes = sorted({h for h in header if header.count(h) > 1 and h})
    if dupes:
        raise InputDataError(f"{shown}: column(s) {', '.join(dupes)} appear twice in the header")
    for i, (cells, line) in enumerate(zip(rows, lines, strict=True)):
        if len(cells) != len(header):
            raise InputDataError(
                f"{where(shown, i, line)}: {len(cells)} field(s), expected {len(header)} like "
                "the header"
            )
    return Table(header, delimiter, tuple(rows), tuple(lines))


def parse_labels(
    values: list[str],
    configured: tuple[str, ...] | None,
    *,
    table: Table,
    shown: str,
    column: str,
) -> tuple[np.ndarray, tuple[str, ...], str]:
    """(labels with -1 for blanks, classes, "names" | "integers") of one label column."""
    given = [v for v in values if v]
    as_names = configured is not None and all(v in configured for v in given)
    if not as_names and given and all(_INT.match(v) for v in given):
        classes = class_names(None, configured, origin=shown, what=f"column {column!r}")
        labels = np.asarray([int(v) if v else -1 for v in values], dtype=np.int64)
        for i, v in enumerate(values):
            if v and not 0 <= labels[i] < len(classes):
                raise InputDataError(
                    f"{where(shown, i, table.lines[i])}: {column} {v} is out of range; expected "
                    f"0..{len(classes) - 1} (data.classes has {len(classes)} names)"
                )
        return labels, classes, "integers"
    names = configured if configured is not None else tuple(sorted(set(given)))
    classes = class_names(None, names, origin=shown, what=f"column {column!r}") if given else ()
    lookup = {name: k for k, name in enumerate(classes)}
    labels = np.full(len(values), -1, dtype=np.int64)
    for i, v in enumerate(values):
        if not v:
            continue
        if v not in lookup:
            raise InputDataError(
                f"{where(shown, i, table.lines[i])}: unknown class {v!r} in column {column!r}; "
                f"expected one of {', '.join(classes)} (data.classes)"
            )
        labels[i] = lookup[v]
    return labels, classes, "names"


def load(params: DataParams, *, split: str = "train", base: Path = Path(".")) -> SourceData:
    key = "data.path" if split == "train" else "data.test_path"
    written = params.path if split == "train" else params.test_path
    path, shown = resolve(written, base), display(written, base)
    require_file(path, key=key, shown=shown)
    cols = params.csv
    required = (cols.path_column, cols.label_column)
    if cols.true_label_column:
        required += (cols.true_label_column,)
    table = read_table(path, shown=shown, required=required)
    check_not_empty(len(table.rows), origin=shown, what="no data rows under the header")

    labels_raw = table.column(cols.label_column)
    for i, v in enumerate(labels_raw):
        if not v:
            raise InputDataError(
                f"{where(shown, i, table.lines[i])}: empty {cols.label_column!r}; expected a "
                "class name or integer (remove unlabelled rows)"
            )
    labels, classes, label_format = parse_labels(
        labels_raw, params.classes, table=table, shown=shown, column=cols.label_column
    )
    true_labels = None
    if cols.true_label_column:
        truth_raw = table.column(cols.true_label_column)
        true_labels, _, _ = parse_labels(
            truth_raw, classes, table=table, shown=shown, column=cols.true_label_column
        )

    root_written = params.root if params.root else os.path.dirname(written) or "."
    root, root_shown = resolve(root_written, base), display(root_written, base)
    if not root.is_dir():
        raise InputDataError(f"{root_shown}: data.root not found; expected the images' folder")
    paths = table.column(cols.path_column)
    files, seen = [], {}
    for i, rel in enumerate(paths):
        at = where(shown, i, table.lines[i])
        if not rel:
            raise InputDataError(f"{at}: empty {cols.path_column!r}; expected an image path")
        real = resolve_inside(root, rel, what=at)
        if str(real) in seen:
            j = seen[str(real)]
            raise InputDataError(
                f"{at}: {rel!r} is listed again (first at data row {j + 1}); expected each "
                "image once"
            )
        seen[str(real)] = i
        if not real.is_file():
            raise InputDataError(f"{at}: image {rel!r} not found under {root_shown}")
        files.append(str(real))
    rel = np.asarray(paths, dtype=str)
    return SourceData(
        labels=labels,
        classes=classes,
        index=np.arange(len(labels), dtype=np.int64),
        origin=shown,
        encoded=EncodedImages(
            files=np.asarray(files, dtype=str), rel=rel, root=root_shown, listed_in=shown
        ),
        paths=rel,
        true_labels=true_labels,
        label_format=label_format,
    )
