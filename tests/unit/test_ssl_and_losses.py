import math

import numpy as np
import pytest
import torch

from noisyflow import losses, ssl


def test_sharpen_makes_distributions_peakier_and_sums_to_one():
    p = torch.tensor([[0.6, 0.3, 0.1]])
    s = ssl.sharpen(p, 0.5)
    expected = torch.tensor([[0.36, 0.09, 0.01]]) / 0.46
    assert torch.allclose(s, expected, atol=1e-6)
    assert torch.allclose(ssl.sharpen(p, 1.0), p)


def test_co_refine_interpolates_label_and_prediction():
    probs, onehot = torch.tensor([[0.2, 0.8]]), torch.tensor([[1.0, 0.0]])
    assert torch.allclose(ssl.co_refine(probs, onehot, torch.tensor([1.0]), 1.0), onehot)
    assert torch.allclose(ssl.co_refine(probs, onehot, torch.tensor([0.0]), 1.0), probs)
    mid = ssl.co_refine(probs, onehot, torch.tensor([0.5]), 1.0)
    assert torch.allclose(mid, torch.tensor([[0.6, 0.4]]))


def test_co_guess_averages_then_sharpens():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert torch.allclose(ssl.co_guess([a, b], 0.5), torch.tensor([[0.5, 0.5]]))


@pytest.mark.parametrize("seed", range(5))
def test_mix_lambda_is_at_least_one_half(seed):
    assert 0.5 <= ssl.mix_lambda(4.0, np.random.default_rng(seed)) <= 1.0


def test_mixmatch_mix_is_a_convex_combination_with_the_permuted_rows():
    x = torch.arange(6.0).view(3, 2)
    t = torch.eye(3)
    perm = torch.tensor([2, 0, 1])
    mx, mt = ssl.mixmatch_mix(x, t, 0.75, perm)
    assert torch.allclose(mx, 0.75 * x + 0.25 * x[perm])
    assert torch.allclose(mt.sum(1), torch.ones(3))
    assert torch.allclose(mt[0], torch.tensor([0.75, 0.0, 0.25]))


def test_linear_rampup():
    assert ssl.linear_rampup(0, 16) == 0 and ssl.linear_rampup(8, 16) == 0.5
    assert ssl.linear_rampup(40, 16) == 1.0 and ssl.linear_rampup(3, 0) == 1.0


def test_neg_entropy_penalty_sign_and_value():
    uniform = torch.zeros(4, 5)
    assert losses.neg_entropy_penalty(uniform).item() == pytest.approx(-math.log(5), rel=1e-6)
    confident = torch.tensor([[20.0, 0, 0, 0, 0]])
    assert losses.neg_entropy_penalty(confident).item() == pytest.approx(0.0, abs=1e-5)
    # minimising the penalty pushes towards higher entropy: its gradient lowers the top logit
    logits = torch.tensor([[2.0, 0.0, 0.0]], requires_grad=True)
    losses.neg_entropy_penalty(logits).backward()
    assert logits.grad[0, 0] > 0


def test_uniform_prior_penalty_is_zero_at_balance_positive_otherwise():
    balanced = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    skewed = torch.tensor([[5.0, 0.0], [5.0, 0.0]])
    assert losses.uniform_prior_penalty(balanced).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.uniform_prior_penalty(skewed).item() > 0.1


def test_soft_cross_entropy_equals_ce_for_onehot_and_mse_range():
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 2, 1, 0])
    onehot = torch.nn.functional.one_hot(labels, 3).float()
    assert torch.allclose(
        losses.soft_cross_entropy(logits, onehot), losses.cross_entropy(logits, labels)
    )
    assert 0 <= losses.unlabelled_mse(logits, onehot).item() <= 1
