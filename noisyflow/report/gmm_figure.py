"""The GMM picture: per network, the per-sample loss histogram (split by the true labels when
known) with the two fitted components and the split threshold, at the end of warm-up and at
the end of training, drawn from the mixture the split used (`report.gmm`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from noisyflow.report import gmm
from noisyflow.report.figure import ALL, CLEAN, NOISY, pyplot, save
from noisyflow.types import Division


def _panel(ax, division: Division, k: int, noise_mask, known, legend: bool) -> None:
    fit = division.fits[k] if k < len(division.fits) else {}
    x = gmm.normalised(division.loss[k], fit)
    if x is None:
        ax.text(0.5, 0.5, "no per-sample statistic recorded", ha="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    bins = np.linspace(0, 1, gmm.BINS + 1)
    weight = np.full(len(x), 1.0 / (len(x) * (bins[1] - bins[0])))  # density of the whole set
    if noise_mask is not None and known is not None and known.any():
        parts = [known & ~noise_mask, known & noise_mask]
        ax.hist(
            [x[p] for p in parts],
            bins=bins,
            weights=[weight[p] for p in parts],
            stacked=True,
            color=[CLEAN, NOISY],
            alpha=0.35,
            label=["label right (truth)", "label wrong (truth)"],
        )
    else:
        ax.hist(x, bins=bins, weights=weight, color=ALL, alpha=0.35, label="all samples")
    labelled = float(np.mean(division.labelled[k]))
    info = [f"judged clean: {labelled:.1%}"]
    if noise_mask is not None and known is not None and known.any():
        info.append(f"truly noisy: {float(noise_mask[known].mean()):.1%}")
    if gmm.is_gmm(fit):
        grid = np.linspace(0, 1, 400)
        clean, noisy = gmm.component_densities(fit, grid)
        ax.plot(grid, clean, color=CLEAN, lw=2, label="fitted clean component")
        ax.plot(grid, noisy, color=NOISY, lw=2, label="fitted noisy component")
        ax.plot(grid, clean + noisy, color="k", lw=0.8, ls=":", label="mixture")
        cut = gmm.loss_threshold(fit)
        if cut is not None:
            p = float(fit["threshold"])
            ax.axvline(cut, color="k", ls="--", lw=1.2, label=f"split: P(clean) = {p:g}")
            info.append(f"split at loss {gmm.raw_loss(fit, cut):.3g}")
        low, high = float(fit["low"]), float(fit["high"])
        if high > low:
            top = ax.secondary_xaxis(
                "top",
                functions=(lambda v: low + v * (high - low), lambda v: (v - low) / (high - low)),
            )
            top.set_xlabel("loss", fontsize=8)
            top.tick_params(labelsize=7)
    else:
        info.append(f"selection: {fit.get('kind', 'no mixture')} (nothing fitted to draw)")
    ax.text(
        0.98,
        0.95,
        "\n".join(info),
        ha="right",
        va="top",
        fontsize=8,
        transform=ax.transAxes,
        bbox={"facecolor": "white", "edgecolor": "#ccc", "alpha": 0.9},
    )
    ax.set_xlim(0, 1)
    ax.set_xlabel("per-sample loss, normalised to [0, 1]")
    ax.set_ylabel("density")
    if legend:
        ax.legend(loc="center right", fontsize=7, frameon=False)


def save_gmm_figure(
    path: str | Path,
    phases: Sequence[tuple[str, Division | None]],
    noise_mask: np.ndarray | None,
    known: np.ndarray | None,
) -> None:
    """One row per (title, division) in `phases`, one column per network."""
    plt = pyplot()
    nets = max((d.num_nets for _, d in phases if d is not None), default=1)
    fig, axes = plt.subplots(
        len(phases), nets, figsize=(5.2 * nets, 3.6 * len(phases)), squeeze=False
    )
    for r, (title, division) in enumerate(phases):
        for k in range(nets):
            ax = axes[r, k]
            ax.set_title(f"{title} · network {k + 1}", loc="left", pad=22)
            if division is None or k >= division.num_nets:
                ax.axis("off")
                ax.text(0.5, 0.5, "not available", ha="center", transform=ax.transAxes)
                continue
            _panel(ax, division, k, noise_mask, known, legend=(r == 0 and k == 0))
    fig.tight_layout()
    save(fig, path)
