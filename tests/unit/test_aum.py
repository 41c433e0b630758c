"""AUM margins, recorder, threshold sets and the per-network division (methods.md section 4)."""

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import noisyflow.config  # noqa: F401  (imported first: config <-> methods import cycle)
from noisyflow.methods.selection import SELECTIONS, SelectionInputs
from noisyflow.methods.selection.aum import (
    AUMParams,
    AUMRecorder,
    AUMSelection,
    aum_clean_prob,
    class_centred,
    margins,
    threshold_sets,
    with_threshold_class,
)

NAN = float("nan")


def test_margins_values():
    logits = torch.tensor([[2.0, 5.0, 1.0], [3.0, 3.0, 0.0], [0.0, -1.0, 4.0]])
    assigned = torch.tensor([1, 0, 0])
    assert_close(margins(logits, assigned), torch.tensor([3.0, 0.0, -4.0]))
    assert_close(margins(logits.bfloat16(), assigned), torch.tensor([3.0, 0.0, -4.0]))


def test_recorder_sums_counts_and_resumes():
    rec = AUMRecorder(4)
    rec.update(torch.tensor([0, 2]), torch.tensor([1.0, 2.0]))
    rec.update(torch.tensor([2, 3]), torch.tensor([3.0, -1.0]))
    assert rec.sum.dtype == torch.float64
    assert_close(rec.sum, torch.tensor([1.0, 0.0, 5.0, -1.0], dtype=torch.float64))
    assert rec.count.tolist() == [1, 0, 2, 1]
    assert_close(
        rec.aum(), torch.tensor([1.0, NAN, 2.5, -1.0], dtype=torch.float64), equal_nan=True
    )
    resumed = AUMRecorder(4)
    resumed.load_state_dict(rec.state_dict())
    rec.update(torch.tensor([1]), torch.tensor([0.5]))
    resumed.update(torch.tensor([1]), torch.tensor([0.5]))
    assert torch.equal(resumed.sum, rec.sum) and torch.equal(resumed.count, rec.count)
    with pytest.raises(ValueError, match="samples"):
        AUMRecorder(5).load_state_dict(rec.state_dict())


def test_threshold_sets_are_disjoint_slices_of_one_permutation():
    a, b = threshold_sets(22, 10, seed=3)
    perm = np.random.default_rng(3).permutation(22)
    assert a.tolist() == sorted(perm[:2].tolist()) and b.tolist() == sorted(perm[2:4].tolist())
    a, b = threshold_sets(1000, 9, seed=0)
    assert len(a) == len(b) == 100 and not set(a) & set(b)
    assert np.array_equal(threshold_sets(1000, 9, seed=0)[1], b)
    labels = with_threshold_class(np.array([0, 1, 2, 1]), np.array([1, 3]), 3)
    assert labels.tolist() == [0, 3, 2, 3]


def test_aum_clean_prob_values():
    thr = torch.tensor([-3.0, -2.0, -1.0, 0.0, 1.0], dtype=torch.float64)
    aum = torch.tensor([-2.5, 0.5, 2.0, -1.0], dtype=torch.float64)
    prob, flagged, cut = aum_clean_prob(aum, thr, percentile=50.0)
    assert_close(prob, torch.tensor([0.2, 0.8, 1.0, 0.4], dtype=torch.float64))
    assert cut == -1.0
    assert flagged.tolist() == [True, False, False, False]  # median -1: -1 is not below
    _, flagged, cut = aum_clean_prob(aum, thr, percentile=99.0)
    assert cut == pytest.approx(0.96)  # 99th percentile, linear interpolation
    assert flagged.tolist() == [True, True, False, True]
    with pytest.raises(ValueError, match="threshold"):
        aum_clean_prob(aum, thr[:0])


def test_registered():
    entry = SELECTIONS.get("aum")
    assert entry.obj is AUMSelection and entry.params is AUMParams
    assert AUMParams() == AUMParams(percentile=99.0, start_epoch=1, per_class=False)
    selector = AUMSelection(AUMParams())
    assert not selector.records(0) and selector.records(1)


AUM0 = [-2.0, 0.0, 1.0, -0.5, 3.0, -1.5, 0.5, 2.0]  # net 0: threshold samples 0, 1
AUM1 = [0.2, -3.0, -1.0, -2.0, 2.0, 0.1, -2.5, 1.0]  # net 1: threshold samples 2, 3
THR = [[True, True] + [False] * 6, [False, False, True, True] + [False] * 4]


def inputs(aums, threshold, counts=None, labels=None):
    counts = np.full((len(aums), 8), 2) if counts is None else counts
    stats = {
        "aum_sum": np.array(aums) * counts,
        "aum_count": counts,
        "aum_threshold": np.array(threshold),
    }
    labels = np.zeros(8, int) if labels is None else np.asarray(labels)
    return SelectionInputs(labels=labels, num_classes=2, stats=stats)


def test_divide_two_networks_takes_each_sample_from_a_run_where_it_is_real():
    division = AUMSelection(AUMParams(percentile=50.0)).divide(inputs([AUM0, AUM1], THR), 2)
    # view 0: samples 0, 1 from net 1 (median of [-1, -2] = -1.5), the rest from net 0
    # (median of [-2, 0] = -1)
    assert_close(division.clean_prob[0], np.array([1.0, 0.0, 1.0, 0.5, 1.0, 0.5, 1.0, 1.0]))
    assert division.labelled[0].tolist() == [True, False, True, True, True, False, True, True]
    # view 1: samples 2, 3 from net 0, the rest from net 1
    assert_close(division.clean_prob[1], np.array([1.0, 0.0, 1.0, 0.5, 1.0, 1.0, 0.0, 1.0]))
    assert division.labelled[1].tolist() == [True, False, True, True, True, True, False, True]
    assert_close(division.loss[0], -np.array([0.2, -3.0, 1.0, -0.5, 3.0, -1.5, 0.5, 2.0]))
    assert_close(division.loss[1], -np.array([0.2, -3.0, 1.0, -0.5, 2.0, 0.1, -2.5, 1.0]))
    assert division.fits[0] == {
        "kind": "aum",
        "percentile": 50.0,
        "per_class": False,
        "threshold": -1.0,
        "num_threshold": 2,
        "flagged": 2,
        "unrecorded": 0,
    }
    assert division.fits[1]["threshold"] == -1.5
    assert np.array_equal(division.weight, np.ones((2, 8)))


def test_class_centred_values():
    aum = torch.tensor([[1.0, 3.0, -2.0, 0.0, 5.0, NAN]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 1])
    real = torch.tensor([[True, True, True, True, False, False]])  # 4: threshold, 5: unrecorded
    # medians over the real AUMs: class 0 -> 1 (lower), class 1 -> -2, all -> 0 (lower)
    out = class_centred(aum, labels, real, num_classes=3)
    assert_close(
        out, torch.tensor([[0.0, 2.0, 0.0, 2.0, 5.0, NAN]], dtype=torch.float64), equal_nan=True
    )


def test_divide_per_class_thresholds_the_class_centred_aums():
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    params = AUMParams(percentile=50.0, per_class=True)
    division = AUMSelection(params).divide(inputs([AUM0, AUM1], THR, labels=labels), 2)
    # net 0, real samples 2-7: class 0 median -0.5, class 1 median 0.5, all 0.5 -> class 0 +1
    # net 1, real samples 0, 1, 4-7: class 0 median -3, class 1 0.1, all 0.1 -> class 0 +3.1
    # the threshold samples keep their raw AUMs: cuts -1 (net 0) and -1.5 (net 1) as before
    centred = [[3.3, 0.1, 2.0, 0.5, 3.0, -1.5, 0.5, 2.0], [3.3, 0.1, 2.0, 0.5, 2.0, 0.1, -2.5, 1.0]]
    assert_close(division.loss, -np.array(centred))
    # sample 1 (-3 from net 1) was flagged by the global rule; its class sits low in net 1
    assert_close(division.clean_prob[0], np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 1.0, 1.0]))
    assert division.labelled[0].tolist() == [True] * 5 + [False, True, True]
    assert_close(division.clean_prob[1], np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0]))
    assert division.labelled[1].tolist() == [True] * 6 + [False, True]
    assert [f["threshold"] for f in division.fits] == [-1.0, -1.5]
    assert division.fits[0]["per_class"] is True


def test_divide_one_network_leaves_threshold_samples_undecided():
    division = AUMSelection(AUMParams(percentile=50.0)).divide(inputs([AUM0], THR[:1]), 1)
    assert_close(division.clean_prob[0], np.array([0.5, 0.5, 1.0, 0.5, 1.0, 0.5, 1.0, 1.0]))
    assert division.labelled[0].tolist() == [True, True, True, True, True, False, True, True]
    assert math.isnan(division.loss[0, 0]) and math.isnan(division.loss[0, 1])


def test_divide_unrecorded_samples_and_bad_stats():
    counts = np.full((2, 8), 2)
    counts[0, 5] = 0  # net 0 never saw sample 5
    division = AUMSelection(AUMParams(percentile=50.0)).divide(inputs([AUM0, AUM1], THR, counts), 2)
    assert division.clean_prob[0, 5] == 0.5 and division.labelled[0, 5]
    assert division.fits[0]["unrecorded"] == 1
    with pytest.raises(ValueError, match="disjoint"):
        AUMSelection(AUMParams()).divide(inputs([AUM0, AUM1], [THR[0], THR[0]]), 2)
    with pytest.raises(ValueError, match="per network"):
        AUMSelection(AUMParams()).divide(inputs([AUM0], THR[:1]), 2)
