"""The torch 1-D GMM against scikit-learn's GaussianMixture, and the GMM selector on top of it."""

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from torch.testing import assert_close

import noisyflow.config  # noqa: F401  (imported first: config <-> methods import cycle)
from noisyflow.methods.selection import SELECTIONS, SelectionInputs
from noisyflow.methods.selection.gmm import GMMParams, GMMSelection, fit_clean_probability
from noisyflow.methods.selection.gmm1d import fit_gmm1d, two_means


def two_modes(seed: int, n_clean: int = 600, n_noisy: int = 400) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.gamma(2.0, 0.1, n_clean), 2.0 + rng.normal(0, 0.4, n_noisy)])


def sklearn_fit(x: np.ndarray, **kw) -> tuple[GaussianMixture, np.ndarray]:
    gm = GaussianMixture(n_components=2, random_state=0, **kw).fit(x[:, None])
    order = np.argsort(gm.means_[:, 0])
    return gm, order


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_at_convergence(seed):
    x = two_modes(seed)
    kw = {"max_iter": 500, "tol": 1e-10, "reg_covar": 1e-6}
    ours = fit_gmm1d(torch.from_numpy(x), **kw)
    gm, order = sklearn_fit(x, **kw)
    assert ours.converged and gm.converged_
    assert_close(ours.weights.numpy(), gm.weights_[order], rtol=0, atol=1e-6)
    assert_close(ours.means.numpy(), gm.means_[order, 0], rtol=0, atol=1e-6)
    assert_close(ours.variances.numpy(), gm.covariances_[order, 0, 0], rtol=0, atol=1e-6)
    assert_close(ours.posteriors.numpy(), gm.predict_proba(x[:, None])[:, order], rtol=0, atol=1e-5)


@pytest.mark.parametrize("seed", [3, 4])
def test_matches_sklearn_iteration_by_iteration_from_the_same_start(seed):
    """Same initial partition -> the same EM path: DivideMix's settings, few iterations."""
    x = two_modes(seed)
    km = KMeans(2, n_init=1, random_state=0).fit(x[:, None])
    km_upper = km.labels_ == np.argmax(km.cluster_centers_[:, 0])
    assert np.array_equal(two_means(torch.from_numpy(x)).numpy(), km_upper)  # same start
    kw = {"max_iter": 10, "tol": 1e-2, "reg_covar": 5e-4}
    ours = fit_gmm1d(torch.from_numpy(x), **kw)
    gm, order = sklearn_fit(x, **kw)
    assert ours.n_iter == gm.n_iter_
    assert ours.lower_bound == pytest.approx(gm.lower_bound_, abs=1e-12)
    assert_close(ours.means.numpy(), gm.means_[order, 0], rtol=0, atol=1e-12)
    assert_close(ours.variances.numpy(), gm.covariances_[order, 0, 0], rtol=0, atol=1e-12)
    assert_close(
        ours.posteriors.numpy(), gm.predict_proba(x[:, None])[:, order], rtol=0, atol=1e-12
    )


def test_components_sorted_and_posteriors_normalised():
    fit = fit_gmm1d(torch.from_numpy(two_modes(4)[::-1].copy()))
    assert fit.means[0] < fit.means[1]
    assert_close(fit.posteriors.sum(dim=1), torch.ones(1000, dtype=torch.float64))
    assert fit.posteriors.dtype == torch.float64 and fit.posteriors.shape == (1000, 2)
    assert_close(fit.weights.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_constant_input_is_a_point_mass():
    fit = fit_gmm1d(torch.full((5,), 3.0), reg_covar=1e-3)
    assert fit.n_iter == 0
    assert_close(fit.means, torch.tensor([3.0, 3.0], dtype=torch.float64))
    assert_close(fit.variances, torch.tensor([1e-3, 1e-3], dtype=torch.float64))
    assert_close(fit.posteriors, torch.full((5, 2), 0.5, dtype=torch.float64))
    prob, info = fit_clean_probability(np.ones(5), GMMParams())
    assert np.array_equal(prob, np.ones(5)) and info == {"kind": "gmm", "low": 1.0, "high": 1.0}


def test_refuses_non_finite_and_empty():
    with pytest.raises(ValueError, match="finite"):
        fit_gmm1d(torch.tensor([0.0, float("nan"), 1.0]))
    with pytest.raises(ValueError, match="no values"):
        fit_gmm1d(torch.zeros(0))


def test_two_means_when_quartiles_coincide():
    x = torch.tensor([0.0] * 8 + [1.0, 2.0], dtype=torch.float64)
    assert two_means(x).tolist() == [False] * 8 + [True, True]  # Lloyd from (0, 2) keeps 1 low


def test_clean_probability_is_invariant_to_loss_scale_and_shift():
    losses = two_modes(5)
    base, fit = fit_clean_probability(losses, GMMParams())
    for scale, shift in ((1e-3, 0.0), (250.0, 7.0)):
        scaled, _ = fit_clean_probability(losses * scale + shift, GMMParams())
        assert_close(scaled, base, rtol=0, atol=1e-9)
    assert fit["clean_component"] == 0 and set(fit) >= {
        "weights",
        "means",
        "variances",
        "clean_component",
        "threshold",
        "low",
        "high",
    }


def test_clean_probability_separates_the_modes_and_keeps_the_contract():
    losses = two_modes(6)
    prob, fit = fit_clean_probability(torch.from_numpy(losses), GMMParams())
    assert isinstance(prob, np.ndarray) and prob.shape == (1000,)
    assert (prob[:600] > 0.5).mean() > 0.97 and (prob[600:] < 0.5).mean() > 0.97
    assert fit["low"] == losses.min() and fit["high"] == losses.max()
    assert fit["threshold"] == 0.5 and fit["means"][0] < fit["means"][1]


def test_gmm_selector_division():
    losses = np.stack([two_modes(7), two_modes(8)])
    division = (
        SELECTIONS.get("gmm")
        .obj(GMMParams(p_threshold=0.6))
        .divide(SelectionInputs(labels=np.zeros(1000, int), num_classes=2, losses=losses), 2)
    )
    assert isinstance(SELECTIONS.get("gmm").obj(GMMParams()), GMMSelection)
    assert division.clean_prob.shape == (2, 1000)
    for k in range(2):
        expected, _ = fit_clean_probability(losses[k], GMMParams(p_threshold=0.6))
        assert_close(division.clean_prob[k], expected)
    assert np.array_equal(division.labelled, division.clean_prob > 0.6)
    assert np.array_equal(division.loss, losses)
