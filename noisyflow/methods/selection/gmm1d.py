"""A two-component 1-D Gaussian mixture fitted by EM in torch (CPU or CUDA).

DivideMix (Li, Socher, Hoi, ICLR 2020) splits per-sample losses with scikit-learn's
GaussianMixture; moving 50k losses to the host and back each epoch, and k-means++ seeding, cost
more than the fit itself. This is the same model with scikit-learn's EM semantics:

- M step: n_k = sum_i r_ik + 10 eps, weights n_k / N, means sum_i r_ik x_i / n_k,
  variances sum_i r_ik (x_i - mu_k)^2 / n_k + reg_covar;
- E step: log-responsibilities; the lower bound is the mean log-likelihood;
- stop when |lower bound - previous| < tol or after max_iter iterations, then one last E step
  so the posteriors match the returned parameters.

The initialisation is deterministic (no seed): the exact 2-means partition of the data (in 1-D a
sorted scan finds it), hard assignments as the first responsibilities, as scikit-learn does
after its (seeded, k-means++) k-means. Components are returned sorted by mean
(component 0 has the lower mean).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class GMM1D:
    """A fitted two-component mixture; tensors on the data's device, in its compute dtype.

    weights, means, variances: (2,), sorted by mean
    posteriors:                (N, 2) P(component | x_i)
    n_iter:                    EM iterations run (0 for constant data)
    converged:                 whether the lower bound moved less than tol
    lower_bound:               mean log-likelihood at the last EM iteration
    """

    weights: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor
    posteriors: torch.Tensor
    n_iter: int
    converged: bool
    lower_bound: float


def compute_dtype(device: torch.device) -> torch.dtype:
    """float64 where it is cheap (CPU, CUDA); float32 on backends without it (MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def two_means(x: torch.Tensor) -> torch.Tensor:
    """The optimal 2-means partition of 1-D data -> (N,) bool, True = upper cluster.

    In 1-D the clusters of an optimal partition are intervals, so one sorted scan with prefix
    sums evaluates every split between distinct values exactly (no iterations, no seed, no local
    optimum as Lloyd's algorithm may find). Ties go to the first (lowest) split. All on device.
    """
    s, _ = torch.sort(x - x.mean())
    n = len(s)
    counts = torch.arange(1, n, dtype=s.dtype, device=s.device)  # size of the lower cluster
    c1, c2 = torch.cumsum(s, 0)[:-1], torch.cumsum(s * s, 0)[:-1]
    t1, t2 = s.sum(), (s * s).sum()
    sse = (c2 - c1**2 / counts) + ((t2 - c2) - (t1 - c1) ** 2 / (n - counts))
    sse = torch.where(s[1:] > s[:-1], sse, torch.full_like(sse, math.inf))  # between distinct
    return x - x.mean() > s[torch.argmin(sse)]


def _m_step(
    x: torch.Tensor, resp: torch.Tensor, reg_covar: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    eps = 10 * torch.finfo(x.dtype).eps
    nk = resp.sum(dim=0) + eps
    means = (resp * x[:, None]).sum(dim=0) / nk
    variances = (resp * (x[:, None] - means) ** 2).sum(dim=0) / nk + reg_covar
    return nk / nk.sum(), means, variances


def _e_step(
    x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, variances: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (mean log-likelihood (0-d), log responsibilities (N, 2))."""
    log_prob = -0.5 * (_LOG_2PI + variances.log() + (x[:, None] - means) ** 2 / variances)
    weighted = log_prob + weights.log()
    norm = torch.logsumexp(weighted, dim=1)
    return norm.mean(), weighted - norm[:, None]


def fit_gmm1d(
    values: torch.Tensor, *, max_iter: int = 100, tol: float = 1e-3, reg_covar: float = 1e-6
) -> GMM1D:
    """Fit a two-component Gaussian mixture to `values` (N,) by EM (see the module docstring).

    Defaults are scikit-learn's. Computes in float64 (float32 on MPS) on the values' device.
    Constant data (a single point mass) cannot be split: both components sit on it with
    variance reg_covar, weights 1/2 and posteriors 1/2, n_iter 0.
    """
    x = values.detach().reshape(-1)
    x = x.to(compute_dtype(x.device))
    if len(x) == 0:
        raise ValueError("fit_gmm1d: no values to fit")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("fit_gmm1d: values must be finite")
    if not bool(x.max() > x.min()):
        half = torch.full((2,), 0.5, dtype=x.dtype, device=x.device)
        return GMM1D(
            weights=half,
            means=x[:1].repeat(2),
            variances=torch.full_like(half, reg_covar),
            posteriors=torch.full((len(x), 2), 0.5, dtype=x.dtype, device=x.device),
            n_iter=0,
            converged=True,
            lower_bound=float("nan"),
        )
    upper = two_means(x)
    resp = torch.stack([~upper, upper], dim=1).to(x.dtype)
    weights, means, variances = _m_step(x, resp, reg_covar)
    lower_bound = -math.inf
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007  (n_iter is reported)
        previous = lower_bound
        bound, log_resp = _e_step(x, weights, means, variances)
        weights, means, variances = _m_step(x, log_resp.exp(), reg_covar)
        lower_bound = float(bound)
        if abs(lower_bound - previous) < tol:
            converged = True
            break
    _, log_resp = _e_step(x, weights, means, variances)
    order = torch.argsort(means)
    return GMM1D(
        weights=weights[order],
        means=means[order],
        variances=variances[order],
        posteriors=log_resp.exp()[:, order],
        n_iter=n_iter,
        converged=converged,
        lower_bound=lower_bound,
    )
