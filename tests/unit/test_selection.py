"""DivideMix's co-divide: per-sample losses of each network -> a GMM clean probability -> the
labelled set, the estimated noise rate and the detection scores of a division."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

import noisyflow.config  # noqa: F401  (imported first: config <-> methods import cycle)
from noisyflow import recipes
from noisyflow.methods.selection import SELECTIONS, SelectionInputs
from noisyflow.methods.selection.gmm import GMMParams, fit_clean_probability, normalize_minmax
from noisyflow.metrics import detection_scores
from noisyflow.train.data import TrainData
from noisyflow.train.runtime import Runtime
from noisyflow.types import Division


def two_mode_losses(n_clean=600, n_noisy=400, seed=0):
    rng = np.random.default_rng(seed)
    losses = np.concatenate([rng.gamma(2.0, 0.1, n_clean), 3.0 + rng.normal(0, 0.4, n_noisy)])
    mask = np.r_[np.zeros(n_clean, bool), np.ones(n_noisy, bool)]
    return losses, mask


def test_gmm_recovers_the_low_loss_mode():
    losses, noisy = two_mode_losses()
    prob, fit = fit_clean_probability(losses, GMMParams())
    assert prob.shape == losses.shape and ((prob >= 0) & (prob <= 1)).all()
    assert roc_auc_score(noisy, 1 - prob) > 0.97
    assert ((prob > 0.5) == ~noisy).mean() > 0.95
    assert fit["clean_component"] == 0 and fit["means"][0] < fit["means"][1]
    assert fit["weights"] == pytest.approx([0.6, 0.4], abs=0.03)
    # means are in normalised units: the clean mode (gamma(2, 0.1), mean 0.2) near the bottom
    span = losses.max() - losses.min()
    assert fit["means"][0] == pytest.approx((0.2 - losses.min()) / span, abs=0.03)


def test_gmm_selection_labels_above_the_threshold_and_estimates_the_noise_rate():
    losses, noisy = two_mode_losses()
    other, _ = two_mode_losses(seed=3)
    selector = SELECTIONS.get("gmm").obj(GMMParams(p_threshold=0.5), seed=0)
    div = selector.divide(
        SelectionInputs(
            labels=np.zeros(1000, int), num_classes=2, losses=np.stack([losses, other])
        ),
        2,
    )
    assert np.array_equal(div.labelled, div.clean_prob > 0.5)
    assert (div.labelled[0] == ~noisy).mean() > 0.95
    metrics = recipes.division_metrics(div, noisy, np.ones(1000, bool))
    # a sample is estimated noisy when neither network labels it
    assert metrics["estimated_noise_rate"] == pytest.approx((~div.labelled.any(0)).mean())
    assert abs(metrics["estimated_noise_rate"] - 0.4) < 0.05
    assert metrics["labelled_frac_net1"] == pytest.approx(div.labelled[0].mean())
    assert metrics["labelled_frac_net2"] == pytest.approx(div.labelled[1].mean())
    det = detection_scores(~div.labelled.any(0), noisy, 1 - div.clean_prob.mean(0))
    for key, value in det.items():
        assert metrics[f"detection_{key}"] == pytest.approx(value)


def test_division_metrics_of_one_network_and_without_truth():
    prob = np.array([[0.9, 0.2, 0.7, 0.1]])
    div = Division(prob, prob > 0.5, np.ones_like(prob), np.zeros_like(prob), ({},))
    noise = np.array([False, True, True, False])
    known = np.array([True, True, False, True])  # row 2's truth unknown: not scored
    metrics = recipes.division_metrics(div, noise, known)
    assert metrics["estimated_noise_rate"] == 0.5
    assert metrics["labelled_frac_net1"] == 0.5 and "labelled_frac_net2" not in metrics
    # scored rows 0, 1, 3: flagged [F, T, T], noisy [F, T, F]
    assert metrics["detection_precision"] == 0.5 and metrics["detection_recall"] == 1.0
    assert metrics["detection_f1"] == pytest.approx(2 / 3)
    assert set(recipes.division_metrics(div, None, None)) == {
        "estimated_noise_rate",
        "labelled_frac_net1",
    }


def test_gmm_is_deterministic():
    losses, _ = two_mode_losses(seed=1)
    a, fit_a = fit_clean_probability(losses, GMMParams())
    b, fit_b = fit_clean_probability(losses.copy(), GMMParams())
    assert np.array_equal(a, b) and fit_a == fit_b


def test_gmm_params_reach_the_fit():
    losses, _ = two_mode_losses(seed=2)
    _, one = fit_clean_probability(losses, GMMParams(max_iter=1))
    _, many = fit_clean_probability(losses, GMMParams(max_iter=50, tol=1e-12))
    assert one["n_iter"] == 1 and many["n_iter"] > 1
    _, fit = fit_clean_probability(losses, GMMParams(p_threshold=0.7, reg_covar=0.01))
    assert fit["threshold"] == 0.7 and min(fit["variances"]) >= 0.01


def test_constant_losses_do_not_divide_by_zero():
    scaled, low, high = normalize_minmax(np.ones(5))
    assert np.array_equal(scaled, np.zeros(5)) and (low, high) == (1.0, 1.0)
    scaled, low, high = normalize_minmax(np.array([2.0, 4.0, 3.0]))
    assert np.allclose(scaled, [0.0, 1.0, 0.5]) and (low, high) == (2.0, 4.0)
    prob, fit = fit_clean_probability(np.ones(5), GMMParams())
    assert np.array_equal(prob, np.ones(5))
    assert fit == {"kind": "gmm", "low": 1.0, "high": 1.0}


class ConstNet(nn.Module):
    """Logits = a fixed vector per sample index, looked up from the image's first pixel."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.table = logits
        self.head = nn.Identity()
        self.feature_dim = logits.shape[1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        idx = torch.round(x[:, 0, 0, 0] * 255).long()
        return self.table[idx]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def test_selection_inputs_are_each_networks_per_sample_cross_entropy():
    images = np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1)  # first pixel = sample index
    labels = np.array([0, 0, 1, 2])
    data = TrainData(images, labels, Runtime.cpu())
    za = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    zb = torch.tensor([[0.0, 1.0, 0.0], [3.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 2.0]])
    gmm = SELECTIONS.get("gmm").obj(GMMParams())
    inputs = recipes.selection_inputs(gmm, [ConstNet(za), ConstNet(zb)], data, 3)
    y = torch.tensor(labels)
    for k, z in enumerate((za, zb)):
        expected = -F.log_softmax(z, 1)[torch.arange(4), y]
        assert np.allclose(inputs.losses[k], expected.numpy()), k
    assert inputs.losses.dtype == np.float64 and inputs.features is None
    assert inputs.losses[0, 1] > inputs.losses[0, 0]  # the wrong prediction costs more
    assert np.array_equal(inputs.labels, labels) and inputs.num_classes == 3
