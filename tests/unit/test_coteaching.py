"""Co-teaching's schedule, small-loss selection and cross update (methods.md section 2)."""

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import noisyflow.config  # noqa: F401  (imported first: config <-> methods import cycle)
from noisyflow.methods.selection import SELECTIONS, SelectionInputs
from noisyflow.methods.selection.coteaching import (
    CoteachingParams,
    CoteachingSelection,
    class_quantile,
    coteaching_losses,
    forget_rate,
    loss_rank_probability,
    num_kept,
    small_loss_keep,
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


def test_per_class_keep_ranks_each_loss_within_its_class():
    # class 0 has small losses, class 1 large ones: a global rank keeps only class 0
    losses = torch.tensor([0.1, 0.2, 0.3, 2.0, 1.0, 3.0])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    assert small_loss_keep(losses, 0.5).tolist() == [True, True, True, False, False, False]
    # within-class quantiles: class 0 -> 0, 1/3, 2/3; class 1 (1.0 < 2.0 < 3.0) -> 1/3, 0, 2/3
    q = class_quantile(losses, labels)
    assert_close(q, torch.tensor([0, 1 / 3, 2 / 3, 1 / 3, 0, 2 / 3], dtype=torch.float64))
    # keep 3: both quantile-0 samples, then the quantile-1/3 tie broken by loss (0.2 < 2.0)
    assert small_loss_keep(losses, 0.5, labels).tolist() == [True, True, False, False, True, False]
    assert small_loss_keep(losses, 4 / 6, labels).tolist() == [True, True, False, True, True, False]
    # class sizes differ: a class of one sample has quantile 0 and is kept first
    q = class_quantile(torch.tensor([5.0, 0.1, 0.2]), torch.tensor([2, 0, 0]))
    assert q.tolist() == [0.0, 0.0, 0.5]


def test_per_class_selection_balances_the_division_and_the_cross_update():
    losses = np.array([[0.1, 0.2, 0.3, 2.0, 1.0, 3.0], [0.3, 0.2, 0.1, 1.0, 3.0, 2.0]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    params = CoteachingParams(forget_rate=0.5, num_gradual=1, per_class=True)
    division = CoteachingSelection(params, seed=0).divide(
        SelectionInputs(labels=labels, num_classes=2, losses=losses, epoch=3), 2
    )
    # order by (quantile, loss): net 1 -> 0, 4, 1, 3, 2, 5; rank probability 1 - rank / 5
    assert_close(division.clean_prob[0], np.array([1.0, 0.6, 0.2, 0.4, 0.8, 0.0]))
    assert division.labelled[0].tolist() == [True, True, False, False, True, False]
    assert division.labelled[1].tolist() == [False, True, True, True, False, False]
    # the per-batch update: b trains on a's class-balanced pick
    sel = CoteachingSelection(params, seed=0)
    la, lb = torch.tensor(losses[0]), torch.tensor(losses[1])
    _, update_b, keep_a, _ = sel.batch_losses(la, lb, 0.5, torch.tensor(labels))
    assert keep_a.tolist() == division.labelled[0].tolist()
    assert_close(update_b, torch.tensor((0.3 + 0.2 + 3.0) / 3, dtype=torch.float64))
    # per_class off (Han et al.): the global rank, whatever the labels
    plain = CoteachingSelection(
        CoteachingParams(forget_rate=0.5, num_gradual=1, per_class=False), seed=0
    )
    _, _, keep_a, _ = plain.batch_losses(la, lb, 0.5, torch.tensor(labels))
    assert keep_a.tolist() == [True, True, True, False, False, False]


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
    assert division.fits[0] == {"kind": "coteaching", "forget_rate": 0.4, "epoch": 7, "kept": 3}
    # network 0 trains on network 1's small-loss set (the cross update)
    assert division.for_net(0).labelled.tolist() == [[True, True, True, False, False]]
    early = selector.divide(
        SelectionInputs(labels=np.zeros(5, int), num_classes=2, losses=losses, epoch=0), 2
    )
    assert early.labelled.all()
