"""Co-teaching's schedule, small-loss selection and cross update (methods.md section 2)."""

import dataclasses

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import noisyflow.config  # noqa: F401  (imported first: config <-> methods import cycle)
from noisyflow.methods.selection import SELECTIONS, SelectionInputs
from noisyflow.methods.selection.coteaching import (
    CoteachingParams,
    CoteachingSelection,
    class_medians,
    coteaching_losses,
    forget_rate,
    loss_rank_probability,
    num_kept,
    small_loss_keep,
    track_class_medians,
)


def official_schedule(tau, num_gradual, exponent, n_epoch=30):
    """bhanML/Co-teaching main.py: ones * tau, first T_k = linspace(0, tau^c, T_k)."""
    schedule = np.ones(n_epoch) * tau
    schedule[:num_gradual] = np.linspace(0, tau**exponent, num_gradual)
    return schedule


@pytest.mark.parametrize("tau,num_gradual,exponent", [(0.4, 5, 1.0), (0.5, 10, 2.0), (0.2, 1, 0.5)])
def test_forget_rate_is_the_official_schedule(tau, num_gradual, exponent):
    expected = official_schedule(tau, num_gradual, exponent)
    got = [forget_rate(e, tau, num_gradual, exponent) for e in range(30)]
    assert_close(np.array(got), expected, rtol=0, atol=1e-12)


def test_forget_rate_values():
    assert [forget_rate(e, 0.4, 5) for e in (0, 1, 2, 4, 5, 99)] == pytest.approx(
        [0.0, 0.1, 0.2, 0.4, 0.4, 0.4]
    )
    assert forget_rate(2, 0.4, 5, 2.0) == pytest.approx(0.08)  # 0.16 * 2 / 4
    assert forget_rate(0, 0.3, 0) == 0.3
    with pytest.raises(ValueError):
        forget_rate(-1, 0.3, 5)


def test_num_kept_floors_with_tolerance_and_keeps_one():
    assert num_kept(10, 1 - 0.9) == 1  # 0.0999... * 10 would floor to 0
    assert num_kept(10, 0.65) == 6 and num_kept(3, 0.1) == 1 and num_kept(5, 0.0) == 0
    assert num_kept(0, 0.5) == 0


def test_small_loss_keep_values_and_ties():
    losses = torch.tensor([3.0, 1.0, 2.0, 1.0, 5.0])
    assert small_loss_keep(losses, 0.6).tolist() == [False, True, True, True, False]
    assert small_loss_keep(losses, 0.4).tolist() == [False, True, False, True, False]
    assert small_loss_keep(torch.ones(4), 0.5).tolist() == [True, True, False, False]
    assert small_loss_keep(losses, 1.0).all()


def test_class_medians_values_and_absent_classes():
    losses = torch.tensor(
        [[0.1, 0.3, 0.2, 2.0, 1.0, 4.0, 3.0, 9.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.0, 7.0]]
    )
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1, 3])
    medians, present = class_medians(losses, labels, 5)
    # row 0: class 0: median of 0.1, 0.3, 0.2 = 0.2; class 1: lower median of 1, 2, 3, 4 = 2.0;
    # class 3: 9.0; classes 2 and 4 absent -> 0. Row 1: 4.0, lower median of 0, 0.5, 1, 2 = 0.5
    assert_close(medians, torch.tensor([[0.2, 2.0, 0.0, 9.0, 0.0], [4.0, 0.5, 0.0, 7.0, 0.0]]))
    assert present.tolist() == [True, True, False, True, False]
    for c in (0, 1, 3):  # torch's own (lower) median
        assert medians[0, c] == losses[0][labels == c].median()


def test_running_class_medians_move_towards_each_batch():
    running = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    batch = torch.tensor([[0.5, 0.1, 0.3, 5.0], [1.0, 3.0, 2.0, 4.0]])
    labels = torch.tensor([0, 0, 0, 2])  # class 1 is not in the batch: it keeps its median
    moved = track_class_medians(running, batch, labels, 0.25)
    # class 0: batch medians 0.3 and 2.0; class 2: 5.0 and 4.0
    expected = [[1.0 + 0.25 * (0.3 - 1.0), 2.0, 3.0 + 0.25 * 2.0], [0.5, 0.0, 1.0]]
    assert_close(moved, torch.tensor(expected))
    assert torch.equal(track_class_medians(running, batch, labels, 0.0), running)
    assert track_class_medians(running, batch, labels, 1.0)[0, 0] == pytest.approx(0.3)


def test_cross_update_ranks_against_the_offsets_and_updates_on_the_losses():
    # b's losses are larger for samples 2, 3 (an under-fitted class): the global rank keeps
    # 0, 1; against class medians (0.1 for 0, 1; 1.0 for 2, 3) it keeps 1 and 3 (-0.05, -0.1)
    loss_a = torch.tensor([0.1, 0.2, 1.1, 1.0])
    loss_b = torch.tensor([0.15, 0.05, 1.1, 0.9])
    offset = torch.tensor([0.1, 0.1, 1.0, 1.0])
    _, _, keep_a, keep_b = coteaching_losses(loss_a, loss_b, 0.5)
    assert keep_b.tolist() == [True, True, False, False]
    update_a, update_b, keep_a, keep_b = coteaching_losses(loss_a, loss_b, 0.5, offset, offset)
    assert keep_a.tolist() == [True, False, False, True]  # 0.0, 0.1, 0.1, 0.0: ties by position
    assert keep_b.tolist() == [False, True, False, True]
    assert_close(update_a, torch.tensor((0.2 + 1.0) / 2))  # a on b's picks, raw losses
    assert_close(update_b, torch.tensor((0.15 + 0.9) / 2))


def test_per_class_division_and_batch_rule_use_the_class_medians():
    # class 1's losses are all larger (under-fitted) but only sample 5 stands out within it
    losses = np.array([[0.25, 0.5, 1.0, 1.25, 1.5, 3.0], [0.5, 0.25, 0.75, 1.5, 1.25, 2.5]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    fixed = CoteachingParams(forget_rate=0.5, num_gradual=1, median_ema=0.0)  # epoch medians
    sel = CoteachingSelection(fixed, seed=0)
    division = sel.divide(SelectionInputs(labels=labels, num_classes=2, losses=losses, epoch=3), 2)
    # net 1: medians 0.5 and 1.5 -> -0.25, 0, 0.5, -0.25, 0, 1.5: keeps 0, 3 (ties by
    # position) and 1; the global rank would keep 0, 1, 2
    assert division.labelled[0].tolist() == [True, True, False, True, False, False]
    assert_close(division.clean_prob[0], np.array([1.0, 0.6, 0.2, 0.8, 0.4, 0.0]))
    assert division.fits[0]["per_class"] is True
    assert np.array_equal(division.loss, losses)  # the raw losses, for plots and batch_rule
    rule = sel.batch_rule(division, torch.as_tensor(labels))
    idx = torch.tensor([5, 3, 0, 2])  # a batch: a's losses rank against a's medians
    la = torch.as_tensor(losses[0][[5, 3, 0, 2]], dtype=torch.float32)
    lb = torch.as_tensor(losses[1][[5, 3, 0, 2]], dtype=torch.float32)
    _, _, keep_a, keep_b = rule(la, lb, 0.5, idx)
    assert keep_a.tolist() == [False, True, True, False]  # 1.5, -0.25, -0.25, 0.5
    # b's medians 0.5 and 1.5: 1.0, 0.0, 0.0, 0.25
    assert keep_b.tolist() == [False, True, True, False]
    # per_class off: Han et al.'s global rank
    plain = CoteachingSelection(
        CoteachingParams(forget_rate=0.5, num_gradual=1, per_class=False), seed=0
    )
    inputs = SelectionInputs(labels=labels, num_classes=2, losses=losses, epoch=3)
    division = plain.divide(inputs, 2)
    assert division.labelled[0].tolist() == [True, True, True, False, False, False]
    _, _, keep_a, _ = plain.batch_rule(division, torch.as_tensor(labels))(la, lb, 0.5, idx)
    assert keep_a.tolist() == [False, False, True, True]
    # a division without losses (NaN) ranks the losses as they are
    blank = CoteachingSelection(CoteachingParams(), seed=0)
    nan = dataclasses.replace(division, loss=np.full((2, 6), np.nan))
    _, _, keep_a, _ = blank.batch_rule(nan, torch.as_tensor(labels))(la, lb, 0.5, idx)
    assert keep_a.tolist() == [False, False, True, True]


def test_batch_rule_medians_follow_the_batches_within_the_epoch():
    # the division's medians are 0.4 (class 0) and 1.2 (class 1); within the epoch class 1 has
    # been learnt (batch losses 0.3, 0.6), so fixed medians keep only class 1
    losses = np.array([[0.2, 0.4, 0.6, 1.0, 1.2, 1.4]] * 2)
    labels = np.array([0, 0, 0, 1, 1, 1])
    inputs = SelectionInputs(labels=labels, num_classes=2, losses=losses, epoch=3)
    idx, batch = torch.tensor([0, 1, 3, 4]), torch.tensor([0.5, 0.7, 0.3, 0.6])

    def keeps(median_ema, calls):
        sel = CoteachingSelection(CoteachingParams(0.5, 1, median_ema=median_ema), seed=0)
        rule = sel.batch_rule(sel.divide(inputs, 2), torch.as_tensor(labels))
        return [rule(batch, batch, 0.5, idx)[2].tolist() for _ in range(calls)]

    only_class_1, one_each = [False, False, True, True], [True, False, True, False]
    assert keeps(0.0, 3) == [only_class_1] * 3  # 0.1, 0.3, -0.9, -0.6
    # 0.5: medians 0.45, 0.75 (0.05, 0.25, -0.45, -0.15), then 0.475, 0.525 (0.025, 0.225,
    # -0.225, 0.075): the running medians carry from batch to batch
    assert keeps(0.5, 3) == [only_class_1, one_each, one_each]
    assert keeps(1.0, 1) == [one_each]  # the batch's own medians 0.5, 0.3: 0, 0.2, 0, 0.3


def test_cross_update_values_and_gradients():
    loss_a = torch.tensor([0.1, 0.9, 0.5, 0.2], requires_grad=True)
    loss_b = torch.tensor([0.8, 0.1, 0.3, 0.4], requires_grad=True)
    update_a, update_b, keep_a, keep_b = coteaching_losses(loss_a, loss_b, 0.5)
    assert keep_a.tolist() == [True, False, False, True]
    assert keep_b.tolist() == [False, True, True, False]
    assert_close(update_a, torch.tensor(0.7))  # a on b's kept: (0.9 + 0.5) / 2
    assert_close(update_b, torch.tensor(0.6))  # b on a's kept: (0.8 + 0.4) / 2
    (update_a + update_b).backward()
    assert_close(loss_a.grad, torch.tensor([0.0, 0.5, 0.5, 0.0]))
    assert_close(loss_b.grad, torch.tensor([0.5, 0.0, 0.0, 0.5]))


def test_cross_update_ignores_non_finite_dropped_losses():
    loss_a = torch.tensor([0.1, float("inf")])
    loss_b = torch.tensor([0.2, 0.1])
    update_a, update_b, _, _ = coteaching_losses(loss_a, loss_b, 0.5)
    assert update_a.item() == float("inf")  # a trains on b's pick: sample 1
    assert_close(update_b, torch.tensor(0.2))


def test_loss_rank_probability():
    got = loss_rank_probability(torch.tensor([0.5, 0.1, 0.3, 0.9, 0.2]))
    assert_close(got, torch.tensor([0.25, 1.0, 0.5, 0.0, 0.75], dtype=torch.float64))
    assert loss_rank_probability(torch.tensor([2.0])).tolist() == [1.0]


def test_registered_selector():
    entry = SELECTIONS.get("coteaching")
    assert entry.obj is CoteachingSelection and entry.params is CoteachingParams
    assert CoteachingParams() == CoteachingParams(
        forget_rate=0.4, num_gradual=10, exponent=1.0, per_class=True
    )
    assert CoteachingSelection.per_batch and CoteachingSelection.requires == {"losses"}


def test_divide_per_network_views():
    losses = np.array([[0.5, 0.1, 0.3, 0.9, 0.2], [0.1, 0.2, 0.3, 0.4, 0.5]])
    selector = CoteachingSelection(CoteachingParams(forget_rate=0.4, num_gradual=5), seed=0)
    assert selector.keep_fraction(2) == pytest.approx(0.8)
    division = selector.divide(
        SelectionInputs(labels=np.zeros(5, int), num_classes=2, losses=losses, epoch=7), 2
    )
    assert_close(division.clean_prob[0], np.array([0.25, 1.0, 0.5, 0.0, 0.75]))
    assert_close(division.clean_prob[1], np.array([1.0, 0.75, 0.5, 0.25, 0.0]))
    assert division.labelled.tolist() == [
        [False, True, True, False, True],
        [True, True, True, False, False],
    ]
    assert np.array_equal(division.weight, np.ones((2, 5)))
    assert np.array_equal(division.loss, losses)
    assert division.fits[0] == {
        "kind": "coteaching",
        "forget_rate": 0.4,
        "epoch": 7,
        "per_class": True,
        "kept": 3,
    }
    # network 0 trains on network 1's small-loss set (the cross update)
    assert division.for_net(0).labelled.tolist() == [[True, True, True, False, False]]
    early = selector.divide(
        SelectionInputs(labels=np.zeros(5, int), num_classes=2, losses=losses, epoch=0), 2
    )
    assert early.labelled.all()
