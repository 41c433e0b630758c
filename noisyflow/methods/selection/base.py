"""The selection seam: what every selector receives and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from noisyflow.methods.registry import NoParams, Registry
from noisyflow.types import Division

# A per-batch selector's rule for one epoch: (loss_a, loss_b, keep_fraction, idx) ->
# (loss for a, loss for b, kept by a, kept by b)
BatchRule = Callable[[Any, Any, float, Any], tuple[Any, Any, Any, Any]]

SELECTIONS = Registry("selection", section="selection")


@dataclass(frozen=True)
class SelectionInputs:
    """What the networks say about every training sample; only what `requires` asks is filled.

    labels:   (N,) given labels
    losses:   (M, N) per-sample loss of the given label (eval mode, un-augmented), or None
    features: (M, N, D) penultimate features, or None
    stats:    per-sample statistics recorded during training (e.g. AUM margins), by name
    epoch:    the training epoch the division is for (schedules such as co-teaching's)
    """

    labels: np.ndarray
    num_classes: int
    losses: np.ndarray | None = None
    features: np.ndarray | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0


class Selector:
    """Base class of selection methods (see the registry entries).

    requires:          what `divide` needs: "losses", "features" (SelectionInputs fields) or
                       "aum" (stats aum_sum / aum_count / aum_threshold recorded during training
                       with a fake threshold class, see selection/aum.py)
    yields_unlabelled: whether the division can leave samples unlabelled (SSL needs that)
    per_batch:         whether it (also) selects inside each training step (co-teaching)
    """

    requires: ClassVar[frozenset[str]] = frozenset()
    yields_unlabelled: ClassVar[bool] = True
    per_batch: ClassVar[bool] = False
    redivide: ClassVar[bool] = False  # divide again at the start of every training epoch
    tracks_training: ClassVar[bool] = False  # records per-sample statistics in warm-up steps
    extra_classes: ClassVar[int] = 0  # output classes added to the warm-up networks

    def __init__(self, params: Any, *, seed: int = 0) -> None:
        self.params = params
        self.seed = seed

    def divide(self, inputs: SelectionInputs, num_nets: int) -> Division:
        raise NotImplementedError

    # Hooks into training; the defaults do nothing.
    def init_stats(
        self, stats: dict, labels: Any, num_nets: int, num_classes: int, epochs: int
    ) -> None:
        """Create the per-sample accumulators this selector records (tensors, on labels' device).

        The training hooks (init_stats, training_labels, record) must not read `self.params`:
        the warm-up stage builds the selector without them, so a change to the selection's own
        params never reruns warm-up."""

    def training_labels(self, stats: dict, labels: Any, k: int) -> Any:
        """The labels network k trains on in warm-up (AUM relabels its threshold samples)."""
        return labels

    def record(self, stats: dict, k: int, idx: Any, logits: Any, assigned: Any, epoch: int) -> None:
        """See one warm-up batch of network k: plain training logits and the labels it used."""

    def at_epoch(self, division: Division, epoch: int, epochs: int) -> Division:
        """The division training uses at `epoch` (a curriculum widens it over time)."""
        return division

    def keep_fraction(self, epoch: int) -> float:
        """Per-batch selectors: the fraction of each batch kept at `epoch`."""
        return 1.0

    def batch_rule(self, division: Division, labels: Any) -> BatchRule:
        """Per-batch selectors: the epoch's rule (loss_a, loss_b, keep_fraction, idx) -> (loss
        for a, loss for b, kept by a, kept by b), given the epoch's division and the given
        labels; idx are the batch's sample indices."""
        raise NotImplementedError


def all_labelled(num_nets: int, n: int, losses: np.ndarray | None = None) -> Division:
    """Every sample labelled with weight 1 and clean probability 1."""
    ones = np.ones((num_nets, n))
    loss = losses if losses is not None else np.full((num_nets, n), np.nan)
    return Division(ones, ones.astype(bool), ones, loss, ({},) * num_nets)


@SELECTIONS.register("none", params=NoParams, paper="no selection: every sample is labelled")
class NoSelection(Selector):
    """No selection: every sample is labelled, weight 1 (plain or robust-loss training)."""

    yields_unlabelled = False

    def divide(self, inputs: SelectionInputs, num_nets: int) -> Division:
        return all_labelled(num_nets, len(inputs.labels), inputs.losses)
