"""Co-divide with a two-component Gaussian mixture on per-sample losses (DivideMix).

Li, Socher, Hoi, "DivideMix: Learning with Noisy Labels as Semi-supervised Learning", ICLR 2020:
per network, min-max normalise the per-sample losses, fit a 2-component GMM, and take the
posterior of the low-mean component as the probability that the label is clean; the labelled set
is {clean_prob > p_threshold}. With two networks each trains on the *other's* division.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from noisyflow.config.parse import param
from noisyflow.methods.selection.base import SELECTIONS, SelectionInputs, Selector
from noisyflow.methods.selection.gmm1d import compute_dtype, fit_gmm1d
from noisyflow.types import Division


@dataclass(frozen=True)
class GMMParams:
    p_threshold: float = param(0.5, gt=0.0, lt=1.0)  # labelled if P(clean) > this (tau)
    max_iter: int = param(20, ge=1)  # EM iterations at most (DivideMix: 10)
    tol: float = param(0.01, gt=0.0)  # stop when the mean log-likelihood moves less than this
    reg_covar: float = param(5e-4, gt=0.0)  # added to each variance (DivideMix's CIFAR value)


def normalize_minmax(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Scale to [0, 1] -> (scaled, low, high); a constant array maps to zeros."""
    low, high = float(values.min()), float(values.max())
    span = high - low
    scaled = (values - low) / span if span > 0 else np.zeros_like(values)
    return scaled, low, high


def fit_clean_probability(
    losses: np.ndarray | torch.Tensor, p: GMMParams
) -> tuple[np.ndarray, dict[str, Any]]:
    """GMM on min-max normalised losses -> (P(low-loss component | loss) (N,), the fit).

    The fit holds weights, means and variances (in normalised units), the normalisation bounds
    and which component is the clean one, so a figure can draw the very mixture that split.
    Fitted by EM in torch on the losses' device (`gmm1d.fit_gmm1d`, scikit-learn's semantics
    with a deterministic 2-means initialisation), so the split is reproducible without a seed.
    A torch tensor is fitted where it lies (a GPU epoch's losses stay on the GPU); a NumPy array
    on the CPU.
    Constant losses carry no evidence of noise: every sample gets clean probability 1.
    """
    x = torch.as_tensor(losses).detach().reshape(-1)
    x = x.to(compute_dtype(x.device))
    low, high = float(x.min()), float(x.max())
    fit: dict[str, Any] = {"kind": "gmm", "low": low, "high": high}
    if not high > low:
        return np.ones(len(x)), fit
    gmm = fit_gmm1d((x - low) / (high - low), max_iter=p.max_iter, tol=p.tol, reg_covar=p.reg_covar)
    clean = int(torch.argmin(gmm.means))  # 0: components are sorted by mean
    fit.update(
        weights=gmm.weights.tolist(),
        means=gmm.means.tolist(),
        variances=gmm.variances.tolist(),
        clean_component=clean,
        threshold=p.p_threshold,
        n_iter=gmm.n_iter,
    )
    return gmm.posteriors[:, clean].cpu().numpy(), fit


@SELECTIONS.register("gmm", params=GMMParams, paper="Li, Socher, Hoi, ICLR 2020 (DivideMix)")
class GMMSelection(Selector):
    """Two-component GMM on each network's per-sample loss; low-loss component = clean."""

    requires = frozenset({"losses"})
    redivide = True

    def divide(self, inputs: SelectionInputs, num_nets: int) -> Division:
        assert inputs.losses is not None
        probs, fits = [], []
        for k in range(num_nets):
            prob, fit = fit_clean_probability(inputs.losses[k], self.params)
            probs.append(prob)
            fits.append(fit)
        clean_prob = np.stack(probs)
        labelled = clean_prob > self.params.p_threshold
        return Division(
            clean_prob, labelled, np.ones_like(clean_prob), inputs.losses.copy(), tuple(fits)
        )
