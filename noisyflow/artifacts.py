"""On-disk formats of the pipeline's intermediate results, read and written in one place.

division     : .npz with clean_prob, labelled, weight, loss (M, N) and fits (JSON text)
label issues : CSV, one row per training sample, cleanlab's columns plus where the sample is in
               the user's data: index (source row), path, given/corrected label and class name,
               label_quality, is_label_issue, prototype_label
model        : torch checkpoint of plain tensors and containers (see recipes.nets_payload)
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from noisyflow.errors import InputDataError
from noisyflow.io import load_npz
from noisyflow.types import Correction, Division, Prepared

LABEL_ISSUE_COLUMNS = (
    "index",
    "path",
    "given_label",
    "given_class",
    "corrected_label",
    "corrected_class",
    "label_quality",
    "is_label_issue",
    "prototype_label",
)


def save_division(path: Path, division: Division) -> None:
    np.savez_compressed(
        path,
        clean_prob=division.clean_prob,
        labelled=division.labelled,
        weight=division.weight,
        loss=division.loss,
        fits=np.array(json.dumps(list(division.fits))),
    )


def load_division(path: str | Path, num_samples: int) -> Division:
    arrays = load_npz(path, required=("clean_prob", "labelled", "weight", "loss"))
    prob = arrays["clean_prob"]
    if prob.ndim != 2 or prob.shape[1] != num_samples or prob.shape[0] not in (1, 2):
        raise InputDataError(
            f"{path}: clean_prob has shape {prob.shape}, expected (1 or 2, {num_samples}) "
            "(does it come from the same prepared data?)"
        )
    fits = json.loads(str(arrays["fits"])) if "fits" in arrays else [{}] * prob.shape[0]
    return Division(
        prob, arrays["labelled"].astype(bool), arrays["weight"], arrays["loss"], tuple(fits)
    )


def save_label_issues(path: Path, prepared: Prepared, correction: Correction) -> None:
    """One row per training sample, in source order (`index` = the row in the user's data)."""
    train, classes = prepared.train, prepared.classes
    order = np.argsort(train.index, kind="stable")
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(LABEL_ISSUE_COLUMNS)
        for i in order:
            given, corrected = int(train.labels[i]), int(correction.corrected_label[i])
            writer.writerow(
                (
                    int(train.index[i]),
                    "" if train.paths is None else str(train.paths[i]),
                    given,
                    classes[given],
                    corrected,
                    classes[corrected],
                    f"{float(correction.label_quality[i]):.6f}",
                    bool(correction.is_label_issue[i]),
                    int(correction.prototype_label[i]),
                )
            )


def load_label_issues(path: str | Path, prepared: Prepared) -> Correction:
    """Parse label_issues.csv back into training order, matching rows by their `index` column.

    Every training sample must appear exactly once; labels must be in 0..K-1 and agree with the
    given labels; `is_label_issue` must be True/False; errors name the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{path}: file not found")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in LABEL_ISSUE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputDataError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = list(reader)
    train, k = prepared.train, prepared.num_classes
    position = {int(s): i for i, s in enumerate(train.index)}
    n = len(train)
    corrected = np.full(n, -1, dtype=np.int64)
    quality = np.full(n, np.nan)
    flagged = np.zeros(n, dtype=bool)
    proto = np.full(n, -1, dtype=np.int64)
    for line, row in enumerate(rows, start=2):
        where = f"{path}, line {line}"
        i = position.get(_int(row["index"], where, "index"))
        if i is None:
            raise InputDataError(f"{where}: index {row['index']} is not a training sample")
        if corrected[i] >= 0:
            raise InputDataError(f"{where}: index {row['index']} appears twice")
        if _int(row["given_label"], where, "given_label") != train.labels[i]:
            raise InputDataError(
                f"{where}: given_label {row['given_label']} differs from the prepared label "
                f"{int(train.labels[i])} of index {row['index']}"
            )
        corrected[i] = _int(row["corrected_label"], where, "corrected_label", upper=k)
        quality[i] = _float01(row["label_quality"], where)
        flagged[i] = _bool(row["is_label_issue"], where)
        proto[i] = _int(row["prototype_label"], where, "prototype_label", lower=-1, upper=k)
    if (corrected < 0).any():
        first = int(train.index[np.flatnonzero(corrected < 0)[0]])
        raise InputDataError(
            f"{path}: {int((corrected < 0).sum())} training sample(s) missing, e.g. index {first}"
        )
    return Correction(corrected, quality, flagged, proto)


def _int(text: str, where: str, column: str, *, lower: int = 0, upper: int | None = None) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise InputDataError(f"{where}: {column} {text!r} is not an integer") from None
    if value < lower or (upper is not None and value >= upper):
        hi = "" if upper is None else f"..{upper - 1}"
        raise InputDataError(f"{where}: {column} {value} outside {lower}{hi}")
    return value


def _float01(text: str, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InputDataError(f"{where}: label_quality {text!r} is not a number") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InputDataError(f"{where}: label_quality {value} outside [0, 1]")
    return value


def _bool(text: str, where: str) -> bool:
    if text in ("True", "False"):
        return text == "True"
    raise InputDataError(f"{where}: is_label_issue {text!r} must be True or False")


def save_history_csv(path: Path, history: list[dict[str, float]]) -> None:
    """Per-epoch stats as CSV (the data behind DVC plots and the MLflow curves)."""
    keys = sorted({k for row in history for k in row} - {"epoch"})
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["epoch", *keys])
        for row in history:
            writer.writerow([row["epoch"], *(row.get(k, "") for k in keys)])


def save_confusion_csv(path: Path, actual: np.ndarray, predicted: np.ndarray) -> None:
    """One row per test sample (actual, predicted): the input DVC's confusion template expects."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["actual", "predicted"])
        writer.writerows(zip(actual.tolist(), predicted.tolist(), strict=True))


def save_per_class(path: Path, classes: tuple[str, ...], per_class: np.ndarray) -> None:
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([("class", "accuracy"), *zip(classes, per_class, strict=True)])


def metrics_payload(metrics: dict[str, float]) -> dict[str, Any]:
    """Rounded, JSON-safe metrics (NaN -> null)."""
    return {k: (round(v, 6) if math.isfinite(v) else None) for k, v in metrics.items()}
