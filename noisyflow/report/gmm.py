"""The division's fitted two-component mixture (DivideMix's GMM), evaluated from `Division.fits`.

Nothing is refitted: the weights, means and variances (in min-max normalised loss units) and the
normalisation bounds are the ones the selection used, so `clean_posterior(fit, x)` reproduces the
split's clean probabilities and `loss_threshold` is where that posterior crosses
`p_threshold`, the loss above which a sample went to the unlabelled (noisy) side.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from noisyflow.types import Division

BINS = 40


def is_gmm(fit: dict[str, Any]) -> bool:
    return fit.get("kind") == "gmm" and "means" in fit


def normalised(loss: np.ndarray, fit: dict[str, Any]) -> np.ndarray | None:
    """The per-sample statistic in the units the mixture was fitted in (min-max to [0, 1] with
    the fit's bounds), or None when the selection recorded none (NaN)."""
    loss = np.asarray(loss, dtype=np.float64)
    if not len(loss) or not np.isfinite(loss).all():
        return None
    low, high = float(fit.get("low", loss.min())), float(fit.get("high", loss.max()))
    if not high > low:
        return np.zeros_like(loss)
    return (loss - low) / (high - low)


def component_densities(fit: dict[str, Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted densities (clean, noisy) of the two components at normalised losses x."""
    x = np.asarray(x, dtype=np.float64)
    dens = []
    for w, m, v in zip(fit["weights"], fit["means"], fit["variances"], strict=True):
        dens.append(w * np.exp(-0.5 * (x - m) ** 2 / v) / math.sqrt(2 * math.pi * v))
    clean = int(fit["clean_component"])
    return dens[clean], dens[1 - clean]


def clean_posterior(fit: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """P(clean component | normalised loss x): the split's clean probability."""
    clean, noisy = component_densities(fit, x)
    total = clean + noisy
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, clean / total, 0.0)


def loss_threshold(fit: dict[str, Any]) -> float | None:
    """Normalised loss where P(clean) first falls to the fit's threshold above the clean mean
    (None when it never does inside [0, 1] or the fit is not a mixture)."""
    if not is_gmm(fit) or "threshold" not in fit:
        return None
    start = float(fit["means"][int(fit["clean_component"])])
    grid = np.linspace(max(start, 0.0), 1.0, 2001)
    below = np.flatnonzero(clean_posterior(fit, grid) <= float(fit["threshold"]))
    return None if not len(below) else float(grid[below[0]])


def raw_loss(fit: dict[str, Any], x: float) -> float:
    """A normalised loss back in the statistic's own units."""
    low, high = float(fit.get("low", 0.0)), float(fit.get("high", 1.0))
    return low + x * (high - low)


def _density(values: np.ndarray, edges: np.ndarray, total: int) -> np.ndarray:
    """Histogram as a density of the *whole* set: clean + noisy parts add up to all."""
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return counts / (max(total, 1) * np.diff(edges))


def histogram_rows(
    division: Division | None,
    noise_mask: np.ndarray | None,
    known: np.ndarray | None,
    networks: int = 2,
    bins: int = BINS,
) -> list[dict[str, Any]]:
    """The table behind the DVC histogram plots: one row per bin of [0, 1].

    Columns per network k (always all, empty where unknown, so dvc.yaml can name them):
    loss_all_netk, loss_clean_netk, loss_noisy_netk (normalised loss, density of all samples;
    clean/noisy by the true labels when known), gmm_clean_netk, gmm_noisy_netk (the fitted
    weighted components), prob_all_netk, prob_clean_netk, prob_noisy_netk (clean probability).
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    cols: dict[str, Any] = {"bin": np.round(centres, 4)}
    truth = noise_mask is not None and known is not None and bool(np.any(known))
    for k in range(networks):
        tag = f"_net{k + 1}"
        names = ("loss_all", "loss_clean", "loss_noisy", "gmm_clean", "gmm_noisy")
        names += ("prob_all", "prob_clean", "prob_noisy")
        for name in names:
            cols[name + tag] = None
        if division is None or k >= division.num_nets:
            continue
        fit = division.fits[k] if k < len(division.fits) else {}
        n = division.clean_prob.shape[1]
        for what, values in (
            ("loss", normalised(division.loss[k], fit)),
            ("prob", np.asarray(division.clean_prob[k], dtype=np.float64)),
        ):
            if values is None:
                continue
            cols[f"{what}_all{tag}"] = _density(values, edges, n)
            if truth:
                cols[f"{what}_clean{tag}"] = _density(values[known & ~noise_mask], edges, n)
                cols[f"{what}_noisy{tag}"] = _density(values[known & noise_mask], edges, n)
        if is_gmm(fit):
            clean, noisy = component_densities(fit, centres)
            cols[f"gmm_clean{tag}"], cols[f"gmm_noisy{tag}"] = clean, noisy
    rows = []
    for b in range(bins):
        rows.append(
            {
                name: ("" if v is None else round(float(v[b]), 6) if name != "bin" else v[b])
                for name, v in cols.items()
            }
        )
    return rows
