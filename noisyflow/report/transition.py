"""The noise-transition view: P(given label | class) estimated from the suggested labels, beside
the true matrix when the data set knows it (meta.json `noise.transition_matrix`, true -> given).

Rows are the (suggested or true) class, columns the given label, so the diagonal is the share
of each class that kept its label and the off-diagonal pattern shows the kind of noise: spread
evenly (symmetric) or concentrated in one cell per row (pairwise / asymmetric).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from noisyflow.noise import transition_matrix
from noisyflow.report.figure import pyplot, save

ANNOTATE_UP_TO = 12  # write the percentages in the cells for at most this many classes


def estimate(suggested: np.ndarray, given: np.ndarray, num_classes: int) -> np.ndarray:
    """Row-normalised counts of (suggested class, given label); rows without samples are 0."""
    return transition_matrix(np.asarray(suggested), np.asarray(given), num_classes)


def describe(matrix: np.ndarray) -> str:
    """Two short lines: the mean off-diagonal mass, and whether it looks pairwise."""
    k = len(matrix)
    off = matrix * (1 - np.eye(k))
    rate = float(off.sum(axis=1).mean())
    text = f"off the diagonal: {rate:.1%} per class"
    if rate < 1e-9 or k < 3:
        return text
    share = off.max(axis=1) / np.maximum(off.sum(axis=1), 1e-12)  # largest wrong cell's share
    if share.mean() > 0.5:
        return text + "\npairwise-looking: one main wrong label per class"
    return text + "\nsymmetric-looking: spread over many wrong labels"


def _heatmap(ax, matrix: np.ndarray, classes: tuple[str, ...], title: str, ylabel: str):
    k = len(classes)
    im = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
    if k <= ANNOTATE_UP_TO:
        for (i, j), v in np.ndenumerate(matrix):
            if v >= 0.005:
                ax.text(
                    j,
                    i,
                    f"{v * 100:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if v > 0.6 else "white",
                )
    ticks = range(k) if k <= 20 else range(0, k, max(1, k // 10))
    ax.set_xticks(list(ticks))
    ax.set_yticks(list(ticks))
    ax.set_xticklabels([classes[i] for i in ticks], rotation=90 if k > 5 else 0, fontsize=7)
    ax.set_yticklabels([classes[i] for i in ticks], fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("given label\n\n" + describe(matrix))
    return im


def save_transition_figure(
    path: str | Path,
    estimated: np.ndarray,
    classes: tuple[str, ...],
    true_matrix: np.ndarray | None = None,
) -> None:
    """Estimated (and true) matrix as heat maps in percent of each row."""
    plt = pyplot()
    panels = [(estimated, "Estimated from the suggested labels", "suggested class")]
    if true_matrix is not None:
        panels.append((true_matrix, "True (how the noise was made)", "true class"))
    size = 3.6 if len(classes) <= 12 else 4.8
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(size * len(panels) + 1.2, size + 1.2),
        squeeze=False,
        layout="constrained",
    )
    im = None
    for ax, (matrix, title, ylabel) in zip(axes[0], panels, strict=True):
        im = _heatmap(ax, matrix, classes, title, ylabel)
    fig.colorbar(im, ax=list(axes[0]), fraction=0.03, pad=0.02, label="share of the row")
    fig.get_layout_engine().set(h_pad=0.1)
    fig.suptitle(
        "Noise transition: P(given label | class), % per row", fontsize=10, x=0.02, ha="left"
    )
    save(fig, path)
