"""MixMatch pieces (sharpen, co-refine, co-guess, mixing, ramp-up) and the regularisers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import noisyflow.config  # noqa: F401  (imported first: config <-> methods import cycle)
from noisyflow.methods import losses
from noisyflow.methods.ssl import mixmatch as ssl


def test_sharpen_makes_distributions_peakier_and_sums_to_one():
    p = torch.tensor([[0.6, 0.3, 0.1]])
    s = ssl.sharpen(p, 0.5)
    expected = torch.tensor([[0.36, 0.09, 0.01]]) / 0.46
    assert_close(s, expected)
    assert_close(ssl.sharpen(p, 1.0), p)
    assert_close(ssl.sharpen(torch.tensor([[0.5, 0.5, 0.0]]), 0.5), torch.tensor([[0.5, 0.5, 0.0]]))


def test_co_refine_interpolates_label_and_prediction_then_sharpens():
    probs, onehot = torch.tensor([[0.2, 0.8]]), torch.tensor([[1.0, 0.0]])
    assert_close(ssl.co_refine(probs, onehot, torch.tensor([1.0]), 1.0), onehot)
    assert_close(ssl.co_refine(probs, onehot, torch.tensor([0.0]), 1.0), probs)
    mid = ssl.co_refine(probs, onehot, torch.tensor([0.5]), 1.0)
    assert_close(mid, torch.tensor([[0.6, 0.4]]))
    sharp = ssl.co_refine(probs, onehot, torch.tensor([0.5]), 0.5)
    assert_close(sharp, torch.tensor([[0.36, 0.16]]) / 0.52)


def test_co_refine_weights_each_row_by_its_own_clean_probability():
    probs = torch.tensor([[0.2, 0.8], [0.9, 0.1]])
    onehot = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out = ssl.co_refine(probs, onehot, torch.tensor([0.25, 0.5]), 1.0)
    assert_close(out, torch.tensor([[0.4, 0.6], [0.45, 0.55]]))


def test_co_guess_averages_then_sharpens():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert_close(ssl.co_guess([a, b], 0.5), torch.tensor([[0.5, 0.5]]))
    c, d = torch.tensor([[0.8, 0.2]]), torch.tensor([[0.4, 0.6]])
    assert_close(ssl.co_guess([c, d], 0.5), torch.tensor([[0.36, 0.16]]) / 0.52)
    assert_close(ssl.co_guess([c, d, d, d], 1.0), torch.tensor([[0.5, 0.5]]))


@pytest.mark.parametrize("seed", range(5))
def test_mix_lambda_is_the_larger_of_a_beta_draw_and_its_complement(seed):
    lam = ssl.mix_lambda(4.0, np.random.default_rng(seed))
    draw = float(np.random.default_rng(seed).beta(4.0, 4.0))
    assert lam == max(draw, 1 - draw) and 0.5 <= lam <= 1.0


def test_mixmatch_mix_is_a_convex_combination_with_the_permuted_rows():
    x = torch.arange(6.0).view(3, 2)
    t = torch.eye(3)
    perm = torch.tensor([2, 0, 1])
    mx, mt = ssl.mixmatch_mix(x, t, 0.75, perm)
    assert_close(mx, 0.75 * x + 0.25 * x[perm])
    assert_close(mt.sum(1), torch.ones(3))
    assert_close(mt[0], torch.tensor([0.75, 0.0, 0.25]))
    assert_close(mt, 0.75 * t + 0.25 * t[perm])


def test_linear_rampup():
    assert ssl.linear_rampup(0, 16) == 0 and ssl.linear_rampup(8, 16) == 0.5
    assert ssl.linear_rampup(40, 16) == 1.0 and ssl.linear_rampup(3, 0) == 1.0
    assert ssl.linear_rampup(-2, 16) == 0.0 and ssl.linear_rampup(4.5, 9) == 0.5


def test_neg_entropy_sign_and_value():
    uniform = torch.zeros(4, 5)
    assert losses.neg_entropy(uniform).item() == pytest.approx(-math.log(5), rel=1e-6)
    confident = torch.tensor([[20.0, 0, 0, 0, 0]])
    assert losses.neg_entropy(confident).item() == pytest.approx(0.0, abs=1e-5)
    two = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # p = [.5, .5] and [.75, .25]
    expected = (math.log(0.5) + 0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / 2
    assert losses.neg_entropy(two).item() == pytest.approx(expected, rel=1e-6)
    # minimising the penalty pushes towards higher entropy: its gradient lowers the top logit
    logits = torch.tensor([[2.0, 0.0, 0.0]], requires_grad=True)
    losses.neg_entropy(logits).backward()
    assert logits.grad[0, 0] > 0


def test_uniform_prior_is_zero_at_balance_and_the_kl_otherwise():
    balanced = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    skewed = torch.tensor([[5.0, 0.0], [5.0, 0.0]])
    assert losses.uniform_prior(balanced).item() == pytest.approx(0.0, abs=1e-6)
    p = F.softmax(torch.tensor([5.0, 0.0]), 0)
    kl = (0.5 * (math.log(0.5) - p.log())).sum()  # KL(uniform || mean p)
    assert losses.uniform_prior(skewed).item() == pytest.approx(float(kl), rel=1e-5)


def test_ce_on_soft_targets_equals_cross_entropy_for_onehot():
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 2, 1, 0])
    onehot = losses.one_hot(labels, 3)
    assert_close(onehot, F.one_hot(labels, 3).float())
    assert_close(losses.ce(logits, onehot), F.cross_entropy(logits, labels, reduction="none"))
    soft = torch.tensor([[0.5, 0.5, 0.0]]).expand(4, 3)
    expected = -(0.5 * F.log_softmax(logits, 1)[:, 0] + 0.5 * F.log_softmax(logits, 1)[:, 1])
    assert_close(losses.ce(logits, soft), expected)


def test_unlabelled_mse_value_and_range():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # p = [.5, .5] and [.75, .25]: squared errors .25 .25 .5625 .5625, mean over 4 entries
    assert losses.unlabelled_mse(logits, targets).item() == pytest.approx(0.40625)
    rand = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)) * 10
    assert 0 <= losses.unlabelled_mse(rand, F.one_hot(torch.arange(4) % 3, 3).float()) <= 1


def test_l1_penalty_sums_absolute_trainable_weights():
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.5, -2.0]]))
        net.bias.fill_(-0.5)
    assert losses.l1_penalty(net).item() == pytest.approx(4.0)
    net.bias.requires_grad_(False)
    assert losses.l1_penalty(net).item() == pytest.approx(3.5)
