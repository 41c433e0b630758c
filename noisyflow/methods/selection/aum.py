"""AUM: the area under the margin, thresholded by deliberately mislabelled samples.

Pleiss, Zhang, Elenberg, Weinberger, "Identifying Mislabeled Data using the Area Under the Margin
Ranking", NeurIPS 2020 (official code asappresearch/aum). The margin of a sample at one update is
its assigned logit minus the largest other logit; averaged over the epochs of training (the AUM)
it is high for samples the network learns from their own features and low (negative) for
mislabelled samples that it only memorises late. The threshold comes from "threshold samples":
N / (K + 1) samples relabelled to an extra, fake class K, which are mislabelled by
construction; a sample whose AUM is below the 99th percentile of theirs is flagged.

The engine's part: train network m with K + 1 outputs and its threshold set relabelled to K
(`threshold_sets`, `with_threshold_class`), call `AUMRecorder.update(index, margins(logits,
assigned))` for every batch of the epochs that `AUMSelection.records(epoch)` allows, and hand the
recorder's sums and counts to `divide` as stats "aum_sum", "aum_count" with the threshold
membership as "aum_threshold".

`per_class` compares each AUM with its given class's median before thresholding. Pairwise noise
(CIFAR-10 asym-40: bird -> airplane) is learnt as a mapping, so a bird labelled airplane has a
margin near zero, far above the threshold samples' (whose fake class has no features to learn),
while the classes left with fewer labels (bird, deer, truck, all clean) are fitted later and lose
margin wholesale. Relative to its class median a sample stands out for its label, not its
class; the same idea as co-teaching's `per_class` (coteaching.py). Not in Pleiss et al., and off
by default: centring assumes every class is as noisy as the others, so where the networks tell
the classes apart and the noise rates differ (digits asym-40: two all-clean classes, eight 40%
noisy ones) it drops clean samples and keeps noisy ones (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from noisyflow.config.parse import param
from noisyflow.methods.selection.base import SELECTIONS, SelectionInputs, Selector
from noisyflow.methods.selection.coteaching import class_medians
from noisyflow.methods.selection.gmm1d import compute_dtype
from noisyflow.types import Division


@dataclass(frozen=True)
class AUMParams:
    """Pleiss et al., NeurIPS 2020: 99th-percentile rule, margins from the second epoch on."""

    percentile: float = param(99.0, gt=0.0, lt=100.0)  # flag AUMs below this threshold percentile
    start_epoch: int = param(1, ge=0)  # first epoch whose margins count (authors skip epoch 0)
    per_class: bool = False  # threshold AUM - its class median + the overall median (module doc)


def margins(logits: torch.Tensor, assigned: torch.Tensor) -> torch.Tensor:
    """z_assigned - max_{k != assigned} z_k on logits (B, K'), assigned (B,) -> (B,) float32.

    Taken on the assigned (possibly noisy, or fake-class) label, from the training forward pass.
    (The official code rounds logits through float16 first; we keep float32.)
    """
    z = logits.detach().float()
    index = assigned.to(z.device).long()[:, None]
    own = z.gather(1, index).squeeze(1)
    others = z.scatter(1, index, float("-inf")).amax(dim=1)
    return own - others


class AUMRecorder:
    """Per-sample sums and counts of margins, kept on the training device.

    `update` is a scatter-add without host syncs; sums are float64 (float32 on MPS) so that a
    resumed run adds in the same order and precision as an uninterrupted one.
    """

    def __init__(self, num_samples: int, device: torch.device | str = "cpu") -> None:
        device = torch.device(device)
        self.sum = torch.zeros(num_samples, dtype=compute_dtype(device), device=device)
        self.count = torch.zeros(num_samples, dtype=torch.int64, device=device)

    def update(self, index: torch.Tensor, margin: torch.Tensor) -> None:
        """Add one margin per sample: index (B,) dataset rows, margin (B,)."""
        index = index.to(self.sum.device).long()
        self.sum.index_put_((index,), margin.detach().to(self.sum), accumulate=True)
        self.count.index_put_((index,), torch.ones_like(index), accumulate=True)

    def aum(self) -> torch.Tensor:
        """(N,) mean margin; NaN where nothing was recorded."""
        return self.sum / self.count

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"sum": self.sum.clone(), "count": self.count.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name in ("sum", "count"):
            mine, theirs = getattr(self, name), state[name]
            if tuple(theirs.shape) != tuple(mine.shape):
                raise ValueError(
                    f"AUM state {name!r}: {tuple(theirs.shape)} samples, expected {tuple(mine.shape)}"
                )
            mine.copy_(theirs)


def threshold_sets(n: int, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint sets of n // (K + 1) sample indices (sorted), slices of one permutation.

    The paper's size (the fake class as large as a real one; the replication code uses
    n // K). With two networks, network m relabels set m, so every sample has an AUM from a
    network in which it is a real-class sample.
    """
    size = n // (num_classes + 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:size]), np.sort(perm[size : 2 * size])


def with_threshold_class(labels: np.ndarray, threshold: np.ndarray, num_classes: int) -> np.ndarray:
    """A copy of `labels` (N,) with the threshold samples relabelled to the fake class K."""
    out = np.array(labels, dtype=np.int64, copy=True)
    out[threshold] = num_classes
    return out


def aum_clean_prob(
    aum: torch.Tensor, threshold_aums: torch.Tensor, percentile: float = 99.0
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """AUMs (N,) against the threshold samples' AUMs (T,) -> (clean_prob (N,), flagged (N,), cut).

    clean_prob: the fraction of threshold samples whose AUM is strictly below the sample's (the
    threshold samples' empirical CDF): 1 when it beats every mislabelled-by-construction sample.
    flagged: AUM < cut, the `percentile`-th percentile of the threshold AUMs (linear
    interpolation, as numpy.percentile). The official code flags when more than 1% of threshold AUMs exceed the
    sample's, which differs only in how it interpolates between two threshold samples.
    """
    if threshold_aums.numel() == 0:
        raise ValueError("aum_clean_prob: no threshold samples with a recorded margin")
    ref = torch.sort(threshold_aums.to(aum.dtype)).values
    clean_prob = torch.searchsorted(ref, aum.contiguous(), side="left").to(aum.dtype) / len(ref)
    cut = float(torch.quantile(ref, percentile / 100.0))
    return clean_prob, aum < cut, cut


def class_centred(
    aum: torch.Tensor, labels: torch.Tensor, real: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """(M, N) AUMs, (N,) given labels, (M, N) bool real -> (M, N): where `real`, AUM minus the
    lower median of its class's real AUMs plus the lower median of all real AUMs (network by
    network); elsewhere (threshold samples, unrecorded ones) the AUM as it is.

    Adding the overall median keeps the values on the threshold samples' scale, so the
    percentile rule still applies: a class whose AUMs sit at the overall median is unchanged.
    """
    out = aum.clone()
    for m in range(aum.shape[0]):
        mask = real[m]
        if not bool(mask.any()):
            continue
        real_aum = aum[m][mask]
        medians, present = class_medians(real_aum[None], labels[mask], num_classes)
        shift = real_aum.median() - medians[0]
        out[m] = torch.where(mask & present[labels], aum[m] + shift[labels], aum[m])
    return out


def _as_tensor(value: Any, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().to(dtype)
    return torch.as_tensor(np.asarray(value)).to(dtype)


@SELECTIONS.register("aum", params=AUMParams, paper="Pleiss et al., NeurIPS 2020")
class AUMSelection(Selector):
    """Area under the margin: flag samples whose mean margin is below 99% of threshold samples.

    Network m's view: each sample's AUM from network m, unless it is one of m's threshold
    samples; then from the other network (two networks, disjoint sets: always available). With
    one network its threshold samples have no AUM of their own: clean_prob 0.5 and labelled
    (no evidence either way). labelled = not flagged; weight 1; loss = -AUM (class-centred with
    `per_class`). Samples without a recorded margin are treated the same way and counted in the
    fit as "unrecorded".
    """

    requires = frozenset({"aum"})
    yields_unlabelled = True
    per_batch = False
    tracks_training = True
    extra_classes = 1  # the fake class of the threshold samples

    def records(self, epoch: int) -> bool:
        """Whether margins of `epoch` (0-based) enter the AUM."""
        return epoch >= self.params.start_epoch

    # Warm-up hooks (no self.params here: see Selector.init_stats).
    def init_stats(
        self, stats: dict, labels: torch.Tensor, num_nets: int, num_classes: int, epochs: int
    ) -> None:
        """Threshold sets (network m relabels set m to class K) and per-epoch margin slots."""
        n = len(labels)
        sets = threshold_sets(n, num_classes, self.seed)
        threshold = torch.zeros(num_nets, n, dtype=torch.bool, device=labels.device)
        for m in range(num_nets):
            threshold[m, torch.as_tensor(sets[m], device=labels.device)] = True
        stats["aum_threshold"] = threshold
        stats["aum_epoch_sum"] = torch.zeros(num_nets, epochs, n, device=labels.device)
        stats["aum_epoch_seen"] = torch.zeros(num_nets, epochs, n, device=labels.device)
        stats["aum_num_classes"] = torch.tensor(num_classes)

    def training_labels(self, stats: dict, labels: torch.Tensor, k: int) -> torch.Tensor:
        fake = int(stats["aum_num_classes"])
        return torch.where(stats["aum_threshold"][k], fake, labels)

    def record(
        self,
        stats: dict,
        k: int,
        idx: torch.Tensor,
        logits: torch.Tensor,
        assigned: torch.Tensor,
        epoch: int,
    ) -> None:
        """Add this batch's margins (training forward, assigned labels) to epoch `epoch`."""
        m = margins(logits.float(), assigned)
        stats["aum_epoch_sum"][k, epoch].index_add_(0, idx, m)
        stats["aum_epoch_seen"][k, epoch].index_add_(0, idx, torch.ones_like(m))

    def divide(self, inputs: SelectionInputs, num_nets: int) -> Division:
        if "aum_epoch_sum" in inputs.stats:  # recorded by warm-up: keep epochs >= start_epoch
            start = self.params.start_epoch
            epoch_sum = _as_tensor(inputs.stats["aum_epoch_sum"], torch.float64)
            epoch_seen = _as_tensor(inputs.stats["aum_epoch_seen"], torch.float64)
            sums, counts = epoch_sum[:, start:].sum(1), epoch_seen[:, start:].sum(1)
        else:
            sums = _as_tensor(inputs.stats["aum_sum"], torch.float64)
            counts = _as_tensor(inputs.stats["aum_count"], torch.float64)
        sums, counts = sums[:num_nets], counts[:num_nets]
        threshold = _as_tensor(inputs.stats["aum_threshold"], torch.bool)[:num_nets]
        n = len(inputs.labels)
        if (
            sums.shape != (num_nets, n)
            or counts.shape != sums.shape
            or threshold.shape != sums.shape
        ):
            raise ValueError(f"aum: stats must be ({num_nets}, {n}) per network")
        if num_nets == 2 and bool((threshold[0] & threshold[1]).any()):
            raise ValueError("aum: the two networks' threshold sets must be disjoint")
        aum = sums / counts
        recorded = counts > 0
        value = aum  # what is thresholded: the AUM, or with per_class its class-centred AUM
        if self.params.per_class:
            labels = torch.as_tensor(np.asarray(inputs.labels)).long()
            value = class_centred(aum, labels, recorded & ~threshold, inputs.num_classes)
        own = []  # per network: clean_prob, flagged, cut, T from its own run
        for m in range(num_nets):
            ref = aum[m][threshold[m] & recorded[m]]
            prob, flagged, cut = aum_clean_prob(value[m], ref, self.params.percentile)
            own.append((prob, flagged, cut, len(ref)))
        clean_prob, labelled, loss, fits = [], [], [], []
        for m in range(num_nets):
            src = torch.full((n,), m)
            if num_nets == 2:
                src = torch.where(threshold[m], 1 - m, m)
            rows = torch.arange(n)
            prob = torch.stack([own[k][0] for k in range(num_nets)])[src, rows]
            flagged = torch.stack([own[k][1] for k in range(num_nets)])[src, rows]
            unknown = ~recorded[src, rows] | threshold[src, rows]
            score = torch.where(unknown, float("nan"), value[src, rows])
            prob = torch.where(unknown, 0.5, prob)
            flagged = flagged & ~unknown
            clean_prob.append(prob.numpy())
            labelled.append((~flagged).numpy())
            loss.append((-score).numpy())
            fits.append(
                {
                    "kind": "aum",
                    "percentile": self.params.percentile,
                    "per_class": self.params.per_class,
                    "threshold": own[m][2],
                    "num_threshold": own[m][3],
                    "flagged": int(flagged.sum()),
                    "unrecorded": int((~recorded[src, rows] & ~threshold[src, rows]).sum()),
                }
            )
        clean = np.stack(clean_prob)
        return Division(clean, np.stack(labelled), np.ones_like(clean), np.stack(loss), tuple(fits))
