"""The label-issue gallery: the flagged training images most likely mislabelled, lowest label
quality first, each captioned with its given class, the suggested class and the score.

The suggested class is the corrected label where the correction changed it; where a sample is
flagged but its label was kept (the evidence was below `correct.min_confidence`, the votes
disagreed, the split trusted the label: clean probability above `correct.max_clean_prob`, or
Bayes' rule with the estimated noise transition kept it: `correct.transition`) it is the final
networks' most probable class other than the given one, marked "*".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from noisyflow.report.tiles import Tile, save_tile_grid
from noisyflow.types import Correction, Prepared

TOP_K = 24  # images in the run's gallery
NCOLS = 8
WRONG, RIGHT = "#c62828", "#9e9e9e"  # frame: given label wrong / right according to the truth


def suggested_labels(labels: np.ndarray, correction: Correction, probs: np.ndarray | None):
    """(N,) the class each sample is suggested to have (see module docstring).

    probs: (N, K) the networks' mean probabilities on the training images, or None (then a
    flagged sample whose label was kept is suggested its prototype vote when it differs).
    """
    labels = np.asarray(labels)
    out = np.where(correction.is_label_issue, correction.corrected_label, labels)
    kept = correction.is_label_issue & (correction.corrected_label == labels)
    if kept.any():
        if probs is not None:
            alt = np.array(probs, dtype=np.float64, copy=True)
            alt[np.arange(len(labels)), labels] = -np.inf
            out[kept] = alt.argmax(axis=1)[kept]
        else:
            proto = correction.prototype_label
            usable = kept & (proto >= 0) & (proto != labels)
            out[usable] = proto[usable]
    return out.astype(np.int64)


def issue_order(correction: Correction, given: np.ndarray, class_index: int | None = None):
    """Flagged rows (optionally only those labelled `class_index`), lowest label quality first."""
    mask = np.asarray(correction.is_label_issue, dtype=bool).copy()
    if class_index is not None:
        mask &= np.asarray(given) == class_index
    rows = np.flatnonzero(mask)
    return rows[np.argsort(correction.label_quality[rows], kind="stable")]


def where_is(prepared: Prepared, i: int) -> str:
    """How a person finds training sample i: its file name, else its row in the source."""
    train = prepared.train
    if train.paths is not None and str(train.paths[i]):
        return Path(str(train.paths[i])).name
    return f"row {int(train.index[i])}"


def issue_tiles(
    prepared: Prepared, correction: Correction, suggested: np.ndarray, rows: np.ndarray
) -> list[Tile]:
    train, classes = prepared.train, prepared.classes
    truth = train.true_labels
    tiles = []
    for rank, i in enumerate(rows, start=1):
        given, sug = int(train.labels[i]), int(suggested[i])
        applied = int(correction.corrected_label[i]) != given
        lines = [
            f"#{rank}  quality {correction.label_quality[i]:.3f}",
            f"given: {classes[given]}",
            f"suggested: {classes[sug]}{'' if applied else '*'}",
        ]
        edge = None
        if truth is not None and truth[i] >= 0:
            lines.append(f"true: {classes[int(truth[i])]}")
            edge = WRONG if truth[i] != given else RIGHT
        lines.append(where_is(prepared, int(i)))
        tiles.append(Tile(np.asarray(train.x[i]), tuple(lines), edge))
    return tiles


def legend_text(prepared: Prepared) -> str:
    text = "quality: the given label's share of the evidence (low = likely wrong)."
    text += "  *: suggestion not applied, label kept."
    if prepared.train.true_labels is not None:
        text += "  Red frame: the given label is wrong (truth known); grey: it was right."
    return text


def save_label_issue_gallery(
    path: str | Path,
    prepared: Prepared,
    correction: Correction,
    suggested: np.ndarray,
    *,
    top_k: int = TOP_K,
    class_name: str | None = None,
) -> np.ndarray:
    """Draw the gallery; return the training rows shown, in order.

    class_name: only images labelled with this class (`noisyflow report --class NAME`).
    """
    classes = prepared.classes
    class_index = None if class_name is None else classes.index(class_name)
    order = issue_order(correction, prepared.train.labels, class_index)
    rows = order[:top_k]
    scope = "" if class_name is None else f" among images labelled '{class_name}'"
    title = (
        f"Label issues{scope}: {len(rows)} of {len(order)} flagged, most likely mislabelled first"
    )
    save_tile_grid(
        path,
        issue_tiles(prepared, correction, suggested, rows),
        title=title,
        ncols=NCOLS,
        legend=legend_text(prepared),
        empty="no training label was flagged as an issue",
    )
    return rows
