import numpy as np
import torch
from noisyflow.selection import (
    clean_probability,
    estimated_noise_rate,
    normalize_minmax,
    per_sample_loss,
    split_by_threshold,
)
from sklearn.metrics import roc_auc_score


def two_mode_losses(n_clean=600, n_noisy=400, seed=0):
    rng = np.random.default_rng(seed)
    losses = np.concatenate([rng.gamma(2.0, 0.1, n_clean), 3.0 + rng.normal(0, 0.4, n_noisy)])
    mask = np.r_[np.zeros(n_clean, bool), np.ones(n_noisy, bool)]
    return losses, mask


def test_gmm_recovers_the_low_loss_mode():
    losses, noisy = two_mode_losses()
    prob = clean_probability(losses, seed=0)
    assert prob.shape == losses.shape and ((prob >= 0) & (prob <= 1)).all()
    assert roc_auc_score(noisy, 1 - prob) > 0.97
    split = split_by_threshold(prob, 0.5)
    assert (split == ~noisy).mean() > 0.95
    assert abs(estimated_noise_rate(prob, 0.5) - 0.4) < 0.05


def test_gmm_is_seed_reproducible():
    losses, _ = two_mode_losses(seed=1)
    assert np.array_equal(clean_probability(losses, seed=5), clean_probability(losses, seed=5))


def test_constant_losses_do_not_divide_by_zero():
    assert np.array_equal(normalize_minmax(np.ones(5)), np.zeros(5))
    assert np.array_equal(clean_probability(np.ones(5)), np.ones(5))


def test_per_sample_loss_matches_manual_cross_entropy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0])
    loss = per_sample_loss(logits, labels)
    expected = -torch.log_softmax(logits, 1)[torch.arange(2), labels]
    assert torch.allclose(loss, expected) and loss[1] > loss[0]
