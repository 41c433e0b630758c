"""PNG figures people look at in the MLflow UI: loss histogram with the GMM fit, training
curves, confusion matrix. Matplotlib with the Agg backend; nothing is shown on screen."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from noisyflow.report.gmm import loss_threshold
from noisyflow.types import Division


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_clean_prob_histogram(
    path: Path, division: Division, noise_mask: np.ndarray | None, known: np.ndarray | None = None
) -> None:
    """Per network: the per-sample statistic the split was computed from (split by the true mask
    when known) with the fitted mixture and its threshold drawn from `division.fits` — the very
    model that split the data, not a refit — and the clean-probability histogram. The dashed
    line in the loss panel is the loss where P(clean) falls to the threshold
    (`report.gmm.loss_threshold`); the run report's fuller version is `report.gmm_figure`."""
    from scipy.stats import norm

    plt = _pyplot()
    nets = division.num_nets
    fig, axes = plt.subplots(2, nets, figsize=(5 * nets, 7), squeeze=False)
    for k in range(nets):
        fit = division.fits[k] if k < len(division.fits) else {}
        loss = division.loss[k]
        ax = axes[0, k]
        if np.isfinite(loss).all():
            low, high = fit.get("low", float(loss.min())), fit.get("high", float(loss.max()))
            x = (loss - low) / (high - low) if high > low else np.zeros_like(loss)
            bins = np.linspace(0, 1, 41)
            if noise_mask is not None and known is not None and known.any():
                ax.hist(
                    [x[known & ~noise_mask], x[known & noise_mask]],
                    bins=bins,
                    stacked=True,
                    density=True,
                    label=["clean (truth)", "noisy (truth)"],
                    color=["tab:green", "tab:red"],
                    alpha=0.6,
                )
            else:
                ax.hist(x, bins=bins, density=True, alpha=0.6, label="all samples")
            if fit.get("kind") == "gmm" and "means" in fit:
                grid = np.linspace(0, 1, 200)
                for j, (w, m, v) in enumerate(
                    zip(fit["weights"], fit["means"], fit["variances"], strict=True)
                ):
                    name = "clean" if j == fit["clean_component"] else "noisy"
                    ax.plot(grid, w * norm.pdf(grid, m, np.sqrt(v)), lw=2, label=f"{name} {m:.2f}")
                cut = loss_threshold(fit)
                if cut is not None:
                    ax.axvline(
                        cut, color="k", ls="--", label=f"split at P(clean)={fit['threshold']}"
                    )
        ax.set(title=f"net{k + 1}: normalised per-sample loss", xlabel="loss (min-max)")
        ax.legend(fontsize=8)
        ax2 = axes[1, k]
        ax2.hist(division.clean_prob[k], bins=np.linspace(0, 1, 41), color="tab:blue", alpha=0.7)
        if "threshold" in fit:
            ax2.axvline(fit["threshold"], color="k", ls="--", label=f"threshold {fit['threshold']}")
            ax2.legend(fontsize=8)
        ax2.set(title=f"net{k + 1}: clean probability", xlabel="P(clean)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def save_training_curves(path: Path, history: list[dict[str, float]], keys: list[str]) -> None:
    """One panel per metric key against epoch."""
    plt = _pyplot()
    keys = [k for k in keys if any(k in row for row in history)]
    fig, axes = plt.subplots(
        1, max(len(keys), 1), figsize=(4 * max(len(keys), 1), 3.2), squeeze=False
    )
    for ax, key in zip(axes[0], keys, strict=False):
        rows = [r for r in history if key in r]
        ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], marker=".")
        ax.set(title=key, xlabel="epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def save_confusion_png(path: Path, cm: np.ndarray, classes: tuple[str, ...]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(
            j,
            i,
            str(v),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if v > cm.max() / 2 else "black",
        )
    ax.set(
        xticks=range(len(classes)),
        yticks=range(len(classes)),
        xticklabels=classes,
        yticklabels=classes,
        xlabel="predicted",
        ylabel="actual",
        title="test confusion matrix",
    )
    if max(map(len, classes), default=0) > 2:  # names, not digits: keep them apart
        ax.tick_params(axis="x", labelrotation=90)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
