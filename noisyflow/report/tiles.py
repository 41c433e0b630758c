"""A grid of training images with short captions: the label-issue gallery, near-duplicate pairs
and outliers are all drawn with it.

Images are shown as the networks see them (uint8 (H, W, C); one channel in grey, three in RGB),
scaled to a fixed tile size with nearest-neighbour interpolation, so an 8x8 digit stays sharp.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisyflow.report.figure import pyplot, save

TILE_IN = 1.3  # inches per image side
LINE_IN = 0.15  # inches per caption line
MAX_CHARS = 24  # caption lines are shortened to this many characters (middle ellipsis)


@dataclass(frozen=True)
class Tile:
    image: np.ndarray  # (H, W, C) uint8
    lines: tuple[str, ...]  # caption, first line bold
    edge: str | None = None  # frame colour (e.g. red: truly mislabelled), None = no frame


def shorten(text: str, width: int = MAX_CHARS) -> str:
    """'a_very_long_file_name.jpg' -> 'a_very_lo…e_name.jpg' (keeps the end: the extension)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[-(width - 1 - head) :]


def side_by_side(a: np.ndarray, b: np.ndarray, gap: int = 1) -> np.ndarray:
    """Two images of one shape as one, with a white gap column (a near-duplicate pair)."""
    h, _, c = a.shape
    white = np.full((h, gap, c), 255, dtype=np.uint8)
    return np.concatenate([a, white, b], axis=1)


def _show(ax, image: np.ndarray) -> None:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        ax.imshow(img[:, :, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(img, interpolation="nearest")


def save_tile_grid(
    path: str | Path,
    tiles: Sequence[Tile],
    *,
    title: str,
    ncols: int = 8,
    legend: str | None = None,
    empty: str = "nothing to show",
    aspect: float = 1.0,
) -> None:
    """One PNG: `title`, an optional `legend` under it (at most two lines), then the tiles.

    aspect: tile width / height (2 for side-by-side pairs).
    """
    plt = pyplot()
    n = len(tiles)
    ncols = max(1, min(ncols, n)) if n else 1
    nrows = max(1, -(-n // ncols))
    lines = max((len(t.lines) for t in tiles), default=1)
    tile_w, tile_h = TILE_IN * aspect, TILE_IN
    cell_w, cell_h = tile_w + 0.2, tile_h + LINE_IN * lines + 0.15
    width = max(cell_w * ncols + 0.2, 6.0)
    legend_lines = textwrap.wrap(legend or "", int((width - 0.2) / 0.065))[:2]
    head = 0.45 + 0.17 * len(legend_lines)
    height = head + cell_h * nrows + 0.1
    fig = plt.figure(figsize=(width, height))
    fig.text(0.1 / width, 1 - 0.3 / height, title, fontsize=11, fontweight="bold", va="center")
    for j, line in enumerate(legend_lines):
        fig.text(
            0.1 / width, 1 - (0.55 + 0.17 * j) / height, line, fontsize=8, va="center", color="#444"
        )
    if not n:
        fig.text(0.5, 0.5 * (1 - head / height), empty, ha="center", va="center", color="#666")
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncols)
        left = 0.1 + c * cell_w + 0.1
        top = height - head - r * cell_h
        ax = fig.add_axes([left / width, (top - tile_h) / height, tile_w / width, tile_h / height])
        _show(ax, tile.image)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(tile.edge is not None)
            if tile.edge is not None:
                spine.set_edgecolor(tile.edge)
                spine.set_linewidth(2.5)
        for j, line in enumerate(tile.lines):
            fig.text(
                (left + tile_w / 2) / width,
                (top - tile_h - 0.06 - j * LINE_IN) / height,
                shorten(line, int(MAX_CHARS * aspect)),
                ha="center",
                va="top",
                fontsize=7.5,
                fontweight="bold" if j == 0 else "normal",
            )
    save(fig, path)
