"""Co-divide: per-sample loss -> min-max normalisation -> two-component GMM -> clean probability.

Li, Socher, Hoi, "DivideMix", ICLR 2020: the posterior of the low-mean component is the
probability that a sample's label is clean; each network's split trains the *other* network.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.mixture import GaussianMixture


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each sample's given label; (N, K), (N,) -> (N,)."""
    return F.cross_entropy(logits, labels, reduction="none")


def normalize_minmax(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant array maps to zeros (DivideMix divides by zero there)."""
    low, span = values.min(), values.max() - values.min()
    return (values - low) / span if span > 0 else np.zeros_like(values)


def clean_probability(
    losses: np.ndarray,
    *,
    max_iter: int = 20,
    tol: float = 1e-2,
    reg_covar: float = 5e-4,
    seed: int = 0,
) -> np.ndarray:
    """Fit a 2-component GMM to normalised losses; return P(low-loss component | loss), (N,).

    Seeded (DivideMix's GMM has no random_state, so its splits are not reproducible).
    """
    x = normalize_minmax(np.asarray(losses, dtype=np.float64)).reshape(-1, 1)
    if np.ptp(x) == 0:
        return np.ones(len(x))
    gmm = GaussianMixture(
        n_components=2, max_iter=max_iter, tol=tol, reg_covar=reg_covar, random_state=seed
    )
    gmm.fit(x)
    return gmm.predict_proba(x)[:, int(gmm.means_.argmin())]


def split_by_threshold(clean_prob: np.ndarray, p_threshold: float) -> np.ndarray:
    """Boolean (N,) mask of the labelled (clean) set: clean_prob > p_threshold."""
    return np.asarray(clean_prob) > p_threshold


def estimated_noise_rate(clean_prob: np.ndarray, p_threshold: float) -> float:
    """Fraction of samples the split calls noisy."""
    return float(1.0 - split_by_threshold(clean_prob, p_threshold).mean())
