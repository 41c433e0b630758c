"""Beyond label errors (cleanlab Datalab's other issue types): near-duplicate training images
with different labels, and outliers far from every class prototype.

Both work on the final networks' features (`features.net_view`: the mean of the networks'
L2-normalised penultimate features, normalised again) with scikit-learn's `NearestNeighbors`.
Distances are cosine distances, 1 - cos(a, b), in [0, 2].

near_duplicate  i's k nearest neighbours (k = NEIGHBOURS) closer than DUPLICATE_FACTOR x the
                median nearest-neighbour distance of the training set (the rule and factor of
                cleanlab's near-duplicate check, on Euclidean distances of unit vectors), whose
                given label differs from i's; each pair listed once.
outlier         the cosine distance to the nearest class prototype (the normalised mean feature
                of the images suggested to be in that class) has a robust z-score above
                OUTLIER_Z: (d - median) / (1.4826 MAD) > OUTLIER_Z.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisyflow.report.gallery import where_is
from noisyflow.report.tiles import Tile, save_tile_grid, side_by_side
from noisyflow.types import Prepared

NEIGHBOURS = 5
DUPLICATE_FACTOR = 0.13
OUTLIER_Z = 4.0
SHOWN = 16  # pairs / outliers drawn in the figures (the CSV lists all)
COLUMNS = (
    "kind",
    "index",
    "path",
    "given_label",
    "given_class",
    "partner_index",
    "partner_path",
    "partner_given_label",
    "partner_given_class",
    "distance",
    "threshold",
    "nearest_class",
)


@dataclass(frozen=True)
class DataIssue:
    kind: str  # near_duplicate | outlier
    row: int  # training row (position in prepared.train)
    partner: int  # the other image of a pair, -1 for outliers
    distance: float  # cosine distance (pair: between the two; outlier: to the nearest prototype)
    threshold: float  # the cut it passed
    nearest_class: int = -1  # outliers: the class of the nearest prototype


def _cosine(euclidean: np.ndarray) -> np.ndarray:
    return euclidean**2 / 2  # unit vectors: |a - b|^2 = 2 - 2 cos


def near_duplicates(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    neighbours: int = NEIGHBOURS,
    factor: float = DUPLICATE_FACTOR,
) -> list[DataIssue]:
    """Pairs closer than factor x the median nearest-neighbour distance, labels different;
    closest first."""
    from sklearn.neighbors import NearestNeighbors

    n = len(features)
    if n < 2:
        return []
    k = min(neighbours + 1, n)
    dist, idx = NearestNeighbors(n_neighbors=k).fit(features).kneighbors(features)
    # column 0 is the sample itself unless an exact duplicate came first: drop self matches
    nearest = np.where(idx[:, 0] == np.arange(n), dist[:, 1], dist[:, 0])
    cut = factor * float(np.median(nearest))
    found: dict[tuple[int, int], float] = {}
    rows, cols = np.nonzero((dist <= cut) & (idx != np.arange(n)[:, None]))
    for i, c in zip(rows.tolist(), cols.tolist(), strict=True):
        j = int(idx[i, c])
        if labels[i] != labels[j]:
            found[(min(i, j), max(i, j))] = float(dist[i, c])
    cos_cut = float(_cosine(np.float64(cut)))
    issues = [
        DataIssue("near_duplicate", i, j, float(_cosine(np.float64(d))), cos_cut)
        for (i, j), d in found.items()
    ]
    return sorted(issues, key=lambda e: (e.distance, e.row))


def prototypes(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, D) normalised mean feature per class (zeros for a class without samples)."""
    out = np.zeros((num_classes, features.shape[1]), dtype=np.float64)
    for c in range(num_classes):
        members = features[labels == c]
        if len(members):
            mean = members.mean(axis=0)
            out[c] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return out


def outliers(
    features: np.ndarray, labels: np.ndarray, num_classes: int, *, z: float = OUTLIER_Z
) -> list[DataIssue]:
    """Images whose distance to the nearest class prototype is a robust outlier; farthest
    first. `labels` say which images make each prototype (the suggested labels)."""
    from sklearn.neighbors import NearestNeighbors

    protos = prototypes(features, labels, num_classes)
    present = np.flatnonzero(np.linalg.norm(protos, axis=1) > 0)
    if len(features) < 3 or not len(present):
        return []
    dist, idx = NearestNeighbors(n_neighbors=1).fit(protos[present]).kneighbors(features)
    d = _cosine(dist[:, 0])
    median = float(np.median(d))
    mad = 1.4826 * float(np.median(np.abs(d - median)))
    if mad <= 0:
        return []
    cut = median + z * mad
    rows = np.flatnonzero(d > cut)
    issues = [
        DataIssue("outlier", int(i), -1, float(d[i]), cut, int(present[idx[i, 0]])) for i in rows
    ]
    return sorted(issues, key=lambda e: (-e.distance, e.row))


def save_data_issues_csv(path: str | Path, issues: list[DataIssue], prepared: Prepared) -> None:
    """outputs/data_issues.csv: one row per pair or outlier, with source rows and paths."""
    train, classes = prepared.train, prepared.classes

    def path_of(i: int) -> str:
        return "" if i < 0 or train.paths is None else str(train.paths[i])

    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for e in issues:
            j = e.partner
            writer.writerow(
                (
                    e.kind,
                    int(train.index[e.row]),
                    path_of(e.row),
                    int(train.labels[e.row]),
                    classes[int(train.labels[e.row])],
                    "" if j < 0 else int(train.index[j]),
                    path_of(j),
                    "" if j < 0 else int(train.labels[j]),
                    "" if j < 0 else classes[int(train.labels[j])],
                    f"{e.distance:.6f}",
                    f"{e.threshold:.6f}",
                    "" if e.nearest_class < 0 else classes[e.nearest_class],
                )
            )


def save_pairs_figure(path: str | Path, pairs: list[DataIssue], prepared: Prepared) -> None:
    train, classes = prepared.train, prepared.classes
    tiles = []
    for e in pairs[:SHOWN]:
        a, b = e.row, e.partner
        tiles.append(
            Tile(
                side_by_side(np.asarray(train.x[a]), np.asarray(train.x[b])),
                (
                    f"'{classes[int(train.labels[a])]}' vs '{classes[int(train.labels[b])]}'",
                    f"distance {e.distance:.4f}",
                    f"{where_is(prepared, a)} | {where_is(prepared, b)}",
                ),
            )
        )
    save_tile_grid(
        path,
        tiles,
        title="Near-duplicates with different labels: "
        + (f"{min(len(pairs), SHOWN)} of {len(pairs)}, closest first" if pairs else "none found"),
        legend="Each tile: two training images the networks see as (almost) the same, with "
        "their given labels. One of the two labels is probably wrong.",
        ncols=4,
        aspect=2.0,
        empty="no near-duplicate pair with different labels",
    )


def save_outliers_figure(path: str | Path, found: list[DataIssue], prepared: Prepared) -> None:
    train, classes = prepared.train, prepared.classes
    tiles = [
        Tile(
            np.asarray(train.x[e.row]),
            (
                f"distance {e.distance:.3f}",
                f"given: {classes[int(train.labels[e.row])]}",
                f"nearest: {classes[e.nearest_class]}",
                where_is(prepared, e.row),
            ),
        )
        for e in found[:SHOWN]
    ]
    save_tile_grid(
        path,
        tiles,
        title="Outliers: "
        + (f"{min(len(found), SHOWN)} of {len(found)}, farthest first" if found else "none found"),
        legend="Training images far from every class prototype (cosine distance to the nearest "
        "one): unusual, ambiguous or out-of-distribution images.",
        ncols=8,
        empty="no outlier: every image is close to some class prototype",
    )
