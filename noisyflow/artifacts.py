"""On-disk formats of the pipeline's intermediate results, read and written in one place.

prepared dir : train.npz (x, labels[, true_labels, noise_mask, source_index]), test.npz (x, y),
               meta.json
division     : .npz with clean_prob (2, N) and loss (2, N)
label issues : CSV index, given_label, corrected_label, label_quality, is_label_issue (cleanlab's
               columns), plus prototype_label
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from noisyflow.correction import Correction
from noisyflow.data import validate_images
from noisyflow.errors import InputDataError
from noisyflow.io import load_npz, read_json, write_json
from noisyflow.recipes import Division, Prepared

LABEL_ISSUE_COLUMNS = (
    "index",
    "given_label",
    "corrected_label",
    "label_quality",
    "is_label_issue",
    "prototype_label",
)


def save_prepared(directory: Path, prepared: Prepared) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    train = {"x": prepared.x_train, "labels": prepared.labels}
    if prepared.true_labels is not None:
        train.update(true_labels=prepared.true_labels, noise_mask=prepared.noise_mask)
    if prepared.train_index is not None:
        train["source_index"] = prepared.train_index
    np.savez_compressed(directory / "train.npz", **train)
    np.savez_compressed(directory / "test.npz", x=prepared.x_test, y=prepared.y_test)
    write_json(directory / "meta.json", prepared.meta)


def load_prepared(directory: str | Path) -> Prepared:
    """Read a prepared dir, validating shapes and label ranges against meta.json."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputDataError(
            f"{directory}: prepared data directory not found (run the prepare stage)"
        )
    meta = read_json(directory / "meta.json")
    classes = tuple(meta.get("classes", ()))
    train = load_npz(directory / "train.npz", required=("x", "labels"))
    test = load_npz(directory / "test.npz", required=("x", "y"))
    validate_images(train["x"], train["labels"], classes, origin=str(directory / "train.npz"))
    validate_images(test["x"], test["y"], classes, origin=str(directory / "test.npz"))
    return Prepared(
        x_train=train["x"],
        labels=train["labels"].astype(np.int64),
        x_test=test["x"],
        y_test=test["y"].astype(np.int64),
        classes=classes,
        true_labels=train.get("true_labels"),
        noise_mask=train.get("noise_mask"),
        train_index=train.get("source_index"),
        meta=meta,
    )


def save_division(path: Path, division: Division) -> None:
    np.savez_compressed(path, clean_prob=division.clean_prob, loss=division.loss)


def load_division(path: str | Path, num_samples: int) -> Division:
    arrays = load_npz(path, required=("clean_prob", "loss"))
    prob = arrays["clean_prob"]
    if prob.ndim != 2 or prob.shape[1] != num_samples:
        raise InputDataError(
            f"{path}: clean_prob has shape {prob.shape}, expected (2, {num_samples}) "
            "(does it come from the same prepared data?)"
        )
    return Division(prob, arrays["loss"])


def save_label_issues(path: Path, labels: np.ndarray, correction: Correction) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(LABEL_ISSUE_COLUMNS)
        for i in range(len(labels)):
            writer.writerow(
                (
                    i,
                    int(labels[i]),
                    int(correction.corrected_label[i]),
                    f"{float(correction.label_quality[i]):.6f}",
                    bool(correction.is_label_issue[i]),
                    int(correction.prototype_label[i]),
                )
            )


def load_label_issues(path: str | Path, num_samples: int) -> Correction:
    """Parse label_issues.csv; errors name the file and row."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{path}: file not found")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if len(rows) != num_samples:
        raise InputDataError(
            f"{path}: {len(rows)} rows, expected one per training sample ({num_samples})"
        )
    try:
        cols = {c: [r[c] for r in rows] for c in LABEL_ISSUE_COLUMNS}
        return Correction(
            corrected_label=np.array(cols["corrected_label"], dtype=np.int64),
            label_quality=np.array(cols["label_quality"], dtype=np.float64),
            is_label_issue=np.array([v == "True" for v in cols["is_label_issue"]]),
            prototype_label=np.array(cols["prototype_label"], dtype=np.int64),
        )
    except (KeyError, ValueError) as exc:
        raise InputDataError(f"{path}: malformed label issues table ({exc})") from exc


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
