"""CurriculumNet's density curriculum: per class, dense samples are easy, sparse ones hard.

Guo, Huang, Zhang, Zhuang, Dong, Scott, Huang, "CurriculumNet: Weakly Supervised Learning from
Large-Scale Web Images", ECCV 2018 (clustering code msight-tech/research-curriculumnet). Within a
class, images whose features lie in a dense region most likely show the class; isolated ones are
more likely mislabelled. Per class:

1. D = Euclidean distances between the class's features (n x n);
2. d_c = the value at position floor(density_t * n^2) of all n^2 sorted entries of D;
3. local density rho_i = #{j : D_ij < d_c} - 1 (itself excluded);
4. three subsets by 1-D k-means on rho: 0 = densest ("clean"), 1, 2 = sparsest ("highly noisy"),
   weighted 1.0 / 0.5 / 0.5 in the paper's mixed training stages.

Differences from the released code, each deliberate: the k-means on rho is the exact optimum
(1-D clusters are intervals, so every pair of split points is scored; no seed, no local optimum)
where the code runs scikit-learn's seeded KMeans; classes with fewer distinct densities than
three get that many subsets (densest first) where the code raises; no PCA to 256 dimensions
(our penultimate features have at most 512); densities are clamped at 0 (d_c = 0 when more than
density_t of the distances are zero, which would give rho = -1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from noisyflow.config.parse import param
from noisyflow.methods.selection.base import SELECTIONS, SelectionInputs, Selector
from noisyflow.types import Division


@dataclass(frozen=True)
class CurriculumParams:
    """Guo et al., ECCV 2018: density threshold and the three subsets' sample weights."""

    density_t: float = param(0.6, gt=0.0, lt=1.0)  # d_c = this quantile of a class's distances
    weight_easy: float = param(1.0, ge=0.0)  # densest subset ("clean")
    weight_semi_hard: float = param(0.5, ge=0.0)  # middle subset ("noisy")
    weight_hard: float = param(0.5, ge=0.0)  # sparsest subset ("highly noisy")


def local_density(features: torch.Tensor, density_t: float) -> tuple[torch.Tensor, float]:
    """features (n, D) -> (rho (n,) int64, d_c). Distances by torch.cdist in float64.

    (cdist computes exact differences for up to 25 points and the matrix-product form beyond,
    as the released code does; exact ties with d_c are then decided by rounding.)
    """
    f = features.to(torch.float64)
    n = f.shape[0]
    dist = torch.cdist(f, f)
    dist.fill_diagonal_(0.0)
    pos = int(math.floor(density_t * n * n))
    d_c = torch.kthvalue(dist.reshape(-1), min(pos, n * n - 1) + 1).values
    rho = ((dist < d_c).sum(dim=1) - 1).clamp_min(0)
    return rho, float(d_c)


def three_means_1d(values: torch.Tensor, *, max_cells: int = 1 << 22) -> torch.Tensor:
    """Optimal 1-D k-means with k = min(3, #distinct) -> (n,) cluster, 0 = lowest values.

    Clusters of an optimal 1-D partition are intervals of the sorted distinct values, so the
    two split points are found by scoring every pair (prefix sums; at most `max_cells` pairs
    at a time). Ties go to the first split pair in row-major order.
    """
    distinct, inverse, counts = torch.unique(values, return_inverse=True, return_counts=True)
    u = len(distinct)
    if u <= 3:
        return inverse
    v = distinct.to(torch.float64)
    v = v - v.mean()
    w = counts.to(torch.float64)
    zero = torch.zeros(1, dtype=torch.float64, device=v.device)
    pw = torch.cat([zero, torch.cumsum(w, 0)])
    p1 = torch.cat([zero, torch.cumsum(w * v, 0)])
    p2 = torch.cat([zero, torch.cumsum(w * v * v, 0)])

    def sse(i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:  # cluster [i, j) of distinct values
        return (p2[j] - p2[i]) - (p1[j] - p1[i]) ** 2 / (pw[j] - pw[i])

    b = torch.arange(2, u, device=v.device)  # second split: clusters [0,a) [a,b) [b,u)
    end = torch.full_like(b, u)
    best, best_a, best_b = math.inf, 1, 2
    rows = max(1, max_cells // len(b))
    for start in range(1, u - 1, rows):
        a = torch.arange(start, min(start + rows, u - 1), device=v.device)
        cost = sse(torch.zeros_like(a), a)[:, None] + sse(a[:, None], b[None, :]) + sse(b, end)
        cost = torch.where(b[None, :] > a[:, None], cost, math.inf)
        flat = int(torch.argmin(cost))
        value = float(cost.reshape(-1)[flat])
        if value < best:
            best, best_a, best_b = value, int(a[flat // len(b)]), int(b[flat % len(b)])
    cluster = (inverse >= best_a).long() + (inverse >= best_b).long()
    return cluster


def density_percentile(rho: torch.Tensor) -> torch.Tensor:
    """(n,) -> mid-rank percentile (#{rho_j < rho_i} + #{j != i: rho_j = rho_i} / 2) / (n - 1).

    1 for the uniquely densest sample, 0 for the uniquely sparsest, 0.5 for a single sample.
    """
    n = rho.shape[0]
    if n == 1:
        return torch.full((1,), 0.5, dtype=torch.float64, device=rho.device)
    below = (rho[None, :] < rho[:, None]).sum(dim=1).to(torch.float64)
    equal = (rho[None, :] == rho[:, None]).sum(dim=1).to(torch.float64) - 1
    return (below + 0.5 * equal) / (n - 1)


def curriculum_subsets(
    features: torch.Tensor, density_t: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """One class's features (n, D) -> (subset (n,) 0/1/2, rho (n,), percentile (n,), d_c)."""
    rho, d_c = local_density(features, density_t)
    cluster = three_means_1d(rho)
    num_clusters = int(cluster.max()) + 1
    return (num_clusters - 1) - cluster, rho, density_percentile(rho), d_c


@SELECTIONS.register("curriculum", params=CurriculumParams, paper="Guo et al., ECCV 2018")
class CurriculumSelection(Selector):
    """Density curriculum: per class, weight 1.0 / 0.5 / 0.5 for dense / medium / sparse samples.

    Every sample stays labelled (a curriculum reweights, it does not discard): weight = its
    subset's weight, clean_prob = its density percentile within its class (mid-rank), loss =
    -rho. Each network's view comes from its own features. Classes with fewer than three
    samples or distinct densities get fewer subsets (a single sample: subset 0, clean_prob 0.5).
    """

    requires = frozenset({"features"})
    yields_unlabelled = False
    per_batch = False

    def divide(self, inputs: SelectionInputs, num_nets: int) -> Division:
        assert inputs.features is not None
        p = self.params
        labels = np.asarray(inputs.labels)
        n = len(labels)
        weights = torch.tensor([p.weight_easy, p.weight_semi_hard, p.weight_hard])
        clean_prob = np.zeros((num_nets, n))
        weight = np.zeros((num_nets, n))
        loss = np.zeros((num_nets, n))
        fits: list[dict[str, Any]] = []
        subsets = np.zeros((num_nets, n), dtype=np.int64)
        for m in range(num_nets):
            features = torch.as_tensor(np.asarray(inputs.features[m]))
            sizes, cutoffs = [], []
            for c in range(inputs.num_classes):
                idx = np.flatnonzero(labels == c)
                if len(idx) == 0:
                    sizes.append([0, 0, 0])
                    cutoffs.append(None)
                    continue
                subset, rho, pct, d_c = curriculum_subsets(features[idx], p.density_t)
                clean_prob[m, idx] = pct.cpu().numpy()
                weight[m, idx] = weights[subset.cpu()].numpy()
                subsets[m, idx] = subset.cpu().numpy()
                loss[m, idx] = -rho.cpu().numpy()
                sizes.append(torch.bincount(subset, minlength=3).tolist())
                cutoffs.append(d_c)
            fits.append(
                {
                    "kind": "curriculum",
                    "density_t": p.density_t,
                    "subset_sizes": sizes,
                    "cutoffs": cutoffs,
                    "subset": subsets[m].tolist(),
                }
            )
        return Division(clean_prob, np.ones((num_nets, n), dtype=bool), weight, loss, tuple(fits))

    def at_epoch(self, division: Division, epoch: int, epochs: int) -> Division:
        """The curriculum: the first third of training uses the dense subset of every class,
        the second third adds the medium one, the last third everything (Guo et al., §3.3),
        each subset with its weight."""
        stage = min(3 * epoch // max(epochs, 1), 2)
        subset = np.array([f["subset"] for f in division.fits])
        labelled = division.labelled & (subset <= stage)
        return Division(
            division.clean_prob, labelled, division.weight, division.loss, division.fits
        )
