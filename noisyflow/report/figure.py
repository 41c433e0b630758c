"""Matplotlib with the Agg backend (nothing on screen), and the style every report figure uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DPI = 100
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
CLEAN, NOISY, ALL = "#2e7d32", "#c62828", "#5c6bc0"  # green / red / indigo, also in the HTML


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def save(fig: Any, path: str | Path) -> None:
    """Write `fig` as PNG (format fixed: the temporary output paths keep their .png suffix)."""
    plt = pyplot()
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)


def message_figure(path: str | Path, title: str, text: str) -> None:
    """A small figure that says why there is nothing to draw (so every declared PNG exists)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 1.4))
    ax.axis("off")
    ax.set_title(title, loc="left")
    ax.text(0.0, 0.5, text, va="center", ha="left", wrap=True, transform=ax.transAxes)
    save(fig, path)
