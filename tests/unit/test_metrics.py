import math

import numpy as np
import pytest

from noisyflow.metrics import accuracy, confusion_matrix, detection_scores, per_class_accuracy


def test_detection_scores_by_hand():
    flagged = np.array([1, 1, 0, 0, 1], bool)
    mask = np.array([1, 0, 1, 0, 1], bool)
    out = detection_scores(flagged, mask, scores=np.array([0.9, 0.6, 0.4, 0.1, 0.8]))
    assert out["precision"] == pytest.approx(2 / 3)
    assert out["recall"] == pytest.approx(2 / 3)
    assert out["f1"] == pytest.approx(2 / 3)
    assert out["auroc"] == pytest.approx(5 / 6)


def test_detection_auroc_is_nan_without_both_classes():
    out = detection_scores(np.zeros(3, bool), np.zeros(3, bool), scores=np.zeros(3))
    assert out["f1"] == 0.0 and math.isnan(out["auroc"])


def test_confusion_and_per_class_accuracy():
    y, pred = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2])
    cm = confusion_matrix(y, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert per_class_accuracy(cm).tolist() == [0.5, 1.0, 1.0]
    assert accuracy(pred, y) == 0.75
