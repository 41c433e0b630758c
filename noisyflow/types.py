"""The shared vocabulary: the prepared data set, a division of it, and a correction of its labels.

Shapes: N training samples, K classes, M networks (1 or 2). Images are uint8 (N, H, W, C), often
memory-mapped from the prepared directory so that no stage holds a copy it does not need.
Ground truth is optional everywhere: `true_labels` is None when nothing is known, and holds -1 for
rows whose truth is unknown when only part is known (a user's audited subset).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Split:
    """One split of the prepared data (train, val or test), rows sorted by source row.

    x:           (n, H, W, C) uint8, usually a read-only memory map
    labels:      (n,) int64, the labels the model trains on / is scored against (given labels)
    index:       (n,) int64, the row of each sample in the user's source (CSV row, position in the
                 sorted folder listing, npz / pack position): what label issues point at
    true_labels: (n,) int64 with -1 where unknown, or None when no truth is known at all
    paths:       (n,) str, the file of each sample as the source names it, or None (array sources)
    """

    x: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    true_labels: np.ndarray | None = None
    paths: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def truth_known(self) -> np.ndarray | None:
        """(n,) bool: rows whose true label is known; None when none is."""
        return None if self.true_labels is None else self.true_labels >= 0

    @property
    def noise_mask(self) -> np.ndarray | None:
        """(n,) bool, True where the given label differs from a known truth (False if unknown)."""
        if self.true_labels is None:
            return None
        return (self.labels != self.true_labels) & (self.true_labels >= 0)


@dataclass
class Prepared:
    """The prepared data set: train (noisy labels), optional val (noisy, held out), test.

    `meta` is meta.json: classes, counts, noise settings, realised noise rate, transition
    matrix, the source's description (what `noisyflow export` needs), preprocessing.
    """

    train: Split
    test: Split
    classes: tuple[str, ...]
    val: Split | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    # Short names for the training split, used throughout the training code.
    @property
    def x_train(self) -> np.ndarray:
        return self.train.x

    @property
    def labels(self) -> np.ndarray:
        return self.train.labels

    @property
    def true_labels(self) -> np.ndarray | None:
        return self.train.true_labels

    @property
    def noise_mask(self) -> np.ndarray | None:
        return self.train.noise_mask

    @property
    def x_test(self) -> np.ndarray:
        return self.test.x

    @property
    def y_test(self) -> np.ndarray:
        return self.test.labels


@dataclass(frozen=True)
class Division:
    """What a selection method says about each training sample, per network: all (M, N).

    clean_prob: probability that the given label is clean
    labelled:   the labelled (clean) set each network's division hands to training
    weight:     per-sample weight of the supervised loss (1.0 unless a curriculum says otherwise)
    loss:       the per-sample statistic the division was computed from (loss, -AUM, ...), for
                plots; NaN where none
    fits:       per network, the fitted model behind the split (e.g. the GMM's weights, means,
                variances and the loss normalisation), so figures draw exactly what split the data
    """

    clean_prob: np.ndarray
    labelled: np.ndarray
    weight: np.ndarray
    loss: np.ndarray
    fits: tuple[dict[str, Any], ...] = ()

    @property
    def num_nets(self) -> int:
        return int(self.clean_prob.shape[0])

    def for_net(self, k: int) -> Division:
        """The division network k trains on: with two networks, the *peer's* (DivideMix)."""
        j = (1 - k) if self.num_nets == 2 else k
        return Division(
            self.clean_prob[j : j + 1],
            self.labelled[j : j + 1],
            self.weight[j : j + 1],
            self.loss[j : j + 1],
            self.fits[j : j + 1],
        )


@dataclass(frozen=True)
class Correction:
    """Per-sample outcome, all (N,): the cleanlab-style label_issues table.

    corrected_label: the suggested label (equal to the given label where the evidence is weak)
    label_quality:   in [0, 1], low = likely mislabelled
    is_label_issue:  flagged as mislabelled
    prototype_label: the prototype vote (-1 when the method uses no prototypes)
    """

    corrected_label: np.ndarray
    label_quality: np.ndarray
    is_label_issue: np.ndarray
    prototype_label: np.ndarray
