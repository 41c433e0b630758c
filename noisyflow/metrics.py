"""Evaluation metrics: accuracy, confusion, and label-issue detection against a known mask."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(pred) == np.asarray(labels)).mean()) if len(labels) else float("nan")


def confusion_matrix(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts, rows = actual class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels), np.asarray(pred)), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    totals = cm.sum(axis=1)
    return np.divide(np.diag(cm), totals, out=np.full(len(cm), np.nan), where=totals > 0)


def detection_scores(
    flagged: np.ndarray, noise_mask: np.ndarray, scores: np.ndarray | None = None
) -> dict[str, float]:
    """Precision/recall/F1 of `flagged` (predicted noisy) against the true `noise_mask`.

    `scores` (higher = more likely noisy) adds AUROC; it is NaN when only one class is present.
    """
    flagged, noise_mask = np.asarray(flagged, bool), np.asarray(noise_mask, bool)
    tp = float((flagged & noise_mask).sum())
    precision = tp / flagged.sum() if flagged.any() else 0.0
    recall = tp / noise_mask.sum() if noise_mask.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    out = {"precision": float(precision), "recall": float(recall), "f1": float(f1)}
    if scores is not None:
        both = noise_mask.any() and not noise_mask.all()
        out["auroc"] = float(roc_auc_score(noise_mask, scores)) if both else float("nan")
    return out
