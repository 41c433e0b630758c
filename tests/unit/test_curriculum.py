"""CurriculumNet density subsets on features with a known dense core and outliers (section 5)."""

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import noisyflow.config  # noqa: F401  (imported first: config <-> methods import cycle)
from noisyflow.methods.selection import SELECTIONS, SelectionInputs
from noisyflow.methods.selection.curriculum import (
    CurriculumParams,
    CurriculumSelection,
    curriculum_subsets,
    density_percentile,
    local_density,
    three_means_1d,
)

# A class on a line: a core of 6 at 0, 3 at 1, 2 at 5, outliers at 40 and 80.
LINE = [0, 0, 0, 0, 0, 0, 1, 1, 1, 5, 5, 40, 80]


def embed(xs, angle=0.7):
    """Points of a line placed in 3-D along a rotated direction (distances unchanged)."""
    direction = torch.tensor([np.cos(angle), np.sin(angle), 0.0], dtype=torch.float64)
    return torch.tensor(xs, dtype=torch.float64)[:, None] * direction + torch.tensor([1.0, -2, 3])


def official_density(x: np.ndarray, density_t: float) -> np.ndarray:
    """The released code's default density, written out (O(n^2) with a sort of n^2 entries)."""
    n = len(x)
    dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    cutoff = np.sort(dist.reshape(-1))[int(n * n * density_t)]
    return np.array([len(np.where(dist[i] < cutoff)[0]) - 1 for i in range(n)])


def test_local_density_by_hand():
    # 169 distances: 51 zeros, 36 ones, 12 fours, then fives: position floor(0.6 * 169) = 101 -> 5
    rho, d_c = local_density(embed(LINE), 0.6)
    assert d_c == pytest.approx(5.0)
    assert rho.tolist() == [8] * 6 + [10] * 3 + [4] * 2 + [0, 0]


def test_local_density_matches_the_released_formula():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.3, (15, 4)), rng.normal(0, 3.0, (8, 4))])
    for t in (0.2, 0.6, 0.9):
        rho, _ = local_density(torch.from_numpy(x), t)
        assert rho.tolist() == official_density(x, t).tolist()


def test_three_means_is_the_exact_optimum():
    # {0,0},{4,4},{8 x6, 10 x3}: SSE 8, against 16 for {0,4},{8},{10} and 24 for {0},{4,8},{10}
    rho = torch.tensor([8] * 6 + [10] * 3 + [4] * 2 + [0, 0])
    assert three_means_1d(rho).tolist() == [2] * 9 + [1, 1, 0, 0]
    assert three_means_1d(torch.tensor([3, 1, 3])).tolist() == [1, 0, 1]
    assert three_means_1d(torch.tensor([0, 1, 3, 100])).tolist() == [0, 0, 1, 2]
    # a tie ({0,1},{2} and {0},{1,2} both cost 0.5) goes to the first split
    assert three_means_1d(torch.tensor([0, 1, 2, 100])).tolist() == [0, 1, 1, 2]
    # tiny chunks give the same answer as one block
    values = torch.from_numpy(np.random.default_rng(1).integers(0, 50, 200))
    assert torch.equal(three_means_1d(values, max_cells=7), three_means_1d(values))


def brute_three_means_sse(values: np.ndarray) -> float:
    v = np.sort(np.unique(values))
    best = np.inf
    for a in range(1, len(v) - 1):
        for b in range(a + 1, len(v)):
            parts = [
                values[values < v[a]],
                values[(values >= v[a]) & (values < v[b])],
                values[values >= v[b]],
            ]
            best = min(best, sum(((p - p.mean()) ** 2).sum() for p in parts))
    return best


def test_three_means_matches_brute_force():
    rng = np.random.default_rng(2)
    for _ in range(5):
        values = rng.integers(0, 30, 40)
        cluster = three_means_1d(torch.from_numpy(values)).numpy()
        sse = sum(
            ((values[cluster == k] - values[cluster == k].mean()) ** 2).sum() for k in range(3)
        )
        assert sse == pytest.approx(brute_three_means_sse(values.astype(float)))


def test_density_percentile_mid_ranks():
    pct = density_percentile(torch.tensor([8] * 6 + [10] * 3 + [4] * 2 + [0, 0]))
    expected = [6.5 / 12] * 6 + [11 / 12] * 3 + [2.5 / 12] * 2 + [0.5 / 12] * 2
    assert_close(pct, torch.tensor(expected, dtype=torch.float64))
    assert density_percentile(torch.tensor([3])).tolist() == [0.5]


def test_subsets_of_the_core_and_outliers():
    subset, rho, _, d_c = curriculum_subsets(embed(LINE), 0.6)
    assert subset.tolist() == [0] * 9 + [1, 1] + [2, 2]  # dense core easy, outliers hard


@pytest.mark.parametrize("n", [1, 2])
def test_tiny_classes(n):
    subset, rho, pct, _ = curriculum_subsets(embed(LINE[::6][:n]), 0.6)
    assert subset.tolist() == [0] * n and rho.tolist() == [0] * n
    assert pct.tolist() == [0.5] * n


def test_registered():
    entry = SELECTIONS.get("curriculum")
    assert entry.obj is CurriculumSelection and entry.params is CurriculumParams
    assert CurriculumParams() == CurriculumParams(0.6, 1.0, 0.5, 0.5)
    assert (
        CurriculumSelection.requires == {"features"} and not CurriculumSelection.yields_unlabelled
    )


def test_divide_weights_each_class_and_network():
    # class 0: the line (13 samples, interleaved with class 1); class 1: 2 samples; class 2: none
    labels = np.array([0] * 13 + [1, 1])
    order = np.random.default_rng(3).permutation(15)
    feats0 = torch.cat([embed(LINE), embed([0, 7])]).numpy()
    feats1 = torch.cat([embed(LINE[::-1]), embed([0, 7])]).numpy()  # net 1 sees the line reversed
    features = np.stack([feats0[order], feats1[order]])
    selector = CurriculumSelection(CurriculumParams(weight_semi_hard=0.25, weight_hard=0.1))
    division = selector.divide(
        SelectionInputs(labels=labels[order], num_classes=3, features=features), 2
    )
    w0 = np.array([1.0] * 9 + [0.25] * 2 + [0.1] * 2 + [1.0, 1.0])
    assert_close(division.weight[0], w0[order])
    assert_close(division.weight[1], np.concatenate([w0[:13][::-1], [1.0, 1.0]])[order])
    assert division.labelled.all()
    pct = np.array([6.5] * 6 + [11] * 3 + [2.5] * 2 + [0.5] * 2) / 12
    assert_close(division.clean_prob[0], np.concatenate([pct, [0.5, 0.5]])[order])
    rho = np.array([8] * 6 + [10] * 3 + [4] * 2 + [0, 0, 0, 0])
    assert_close(division.loss[0], -rho[order].astype(float))
    assert division.fits[0]["subset_sizes"] == [[9, 2, 2], [2, 0, 0], [0, 0, 0]]
    assert division.fits[0]["cutoffs"][0] == pytest.approx(5.0)
    assert division.fits[0]["cutoffs"][2] is None
