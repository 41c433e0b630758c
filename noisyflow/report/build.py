"""Everything `evaluate` writes for the report, from the run's files and final networks:
the figures, the DVC plot tables, outputs/data_issues.csv and the HTML page.

Inputs other than the prepared data, the label issues and the metrics are optional: a missing
or mismatched division or history file leaves a note in the report instead of failing the
stage (under DVC they are the stage's dependencies, so they exist and match).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from noisyflow.errors import NoisyflowError
from noisyflow.report import data_issues as di
from noisyflow.report import gmm, transition
from noisyflow.report.curves import combine, save_curves_csv, save_curves_figure
from noisyflow.report.features import NetView
from noisyflow.report.gallery import issue_order, save_label_issue_gallery, suggested_labels
from noisyflow.report.gmm_figure import save_gmm_figure
from noisyflow.report.page import ReportData, render
from noisyflow.types import Correction, Division, Prepared

TABLE_ROWS = 50  # label issues listed in the page (the gallery shows gallery.TOP_K)
DATA_ISSUE_ROWS = 100


@dataclass(frozen=True)
class ReportPaths:
    """Where the report's files go (temporary paths inside `atomic_outputs`)."""

    report: Path
    data_issues: Path
    curves: Path
    curves_png: Path
    gmm_warmup: Path
    gmm_train: Path
    gmm_png: Path
    transition_png: Path
    gallery: Path
    duplicates_png: Path
    outliers_png: Path


@dataclass
class ReportInputs:
    prepared: Prepared
    correction: Correction
    metrics: dict[str, Any]  # metrics.json as written (rounded, None for NaN)
    per_class: np.ndarray  # (K,) test accuracy per class
    view: NetView | None  # final networks on the training images
    params: dict[str, Any]  # flattened declared params
    divisions: dict[str, Division | None] = field(default_factory=dict)  # warmup, train
    histories: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    mlflow: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)  # what -> final path, for the page
    notes: list[str] = field(default_factory=list)
    confusion_png: Path | None = None


@dataclass(frozen=True)
class ReportSummary:
    flagged: int
    near_duplicates: int
    outliers: int
    gallery_rows: np.ndarray


def read_division(path: str | Path, n: int, what: str, notes: list[str]) -> Division | None:
    """The division at `path`, or None with a note saying why it is not in the report."""
    from noisyflow.artifacts import load_division

    try:
        return load_division(path, n)
    except NoisyflowError as exc:
        notes.append(f"The {what} split is not shown: {exc}")
        return None


def mlflow_links(
    *,
    run_id: str | None,
    parent_id: str | None,
    tracking_uri: str,
    experiment_name: str,
    experiment_id: str | None,
) -> dict[str, Any] | None:
    """Ids, the UI link of the pipeline run (HTTP stores), or how to open a local store."""
    if not run_id:
        return None
    out: dict[str, Any] = {
        "run_id": run_id,
        "parent_id": parent_id,
        "tracking_uri": tracking_uri,
        "experiment_name": experiment_name,
        "experiment_id": experiment_id,
    }
    target = parent_id or run_id
    path = f"#/experiments/{experiment_id}/runs/{target}" if experiment_id is not None else None
    if tracking_uri.startswith(("http://", "https://")):
        if path:
            out["url"] = f"{tracking_uri.rstrip('/')}/{path}"
    else:
        where = (
            f"open <code>http://127.0.0.1:5000/{path}</code>"
            if path
            else f"open the run <code>{target}</code> in the experiment {experiment_name}"
        )
        out["ui_hint"] = (
            f"start the UI with <code>mlflow ui --backend-store-uri {tracking_uri}</code>, "
            f"then {where}"
        )
    return out


def _issue_rows(
    prepared: Prepared, correction: Correction, suggested: np.ndarray, rows: np.ndarray
) -> list[dict[str, Any]]:
    train, classes = prepared.train, prepared.classes
    out = []
    for rank, i in enumerate(rows, start=1):
        given = int(train.labels[i])
        true = None
        if train.true_labels is not None and train.true_labels[i] >= 0:
            true = classes[int(train.true_labels[i])]
        out.append(
            {
                "rank": rank,
                "index": int(train.index[i]),
                "path": "" if train.paths is None else str(train.paths[i]),
                "given": classes[given],
                "suggested": classes[int(suggested[i])],
                "changed": int(correction.corrected_label[i]) != given,
                "quality": float(correction.label_quality[i]),
                "true": true,
            }
        )
    return out


def _per_class(prepared: Prepared, correction: Correction, acc: np.ndarray) -> list[dict]:
    labels = prepared.train.labels
    return [
        {
            "class": name,
            "train": int((labels == c).sum()),
            "flagged": int((correction.is_label_issue & (labels == c)).sum()),
            "test_accuracy": float(acc[c]) if np.isfinite(acc[c]) else None,
        }
        for c, name in enumerate(prepared.classes)
    ]


def _true_transition(meta: dict[str, Any], k: int) -> np.ndarray | None:
    matrix = (meta.get("noise") or {}).get("transition_matrix")
    if matrix is None:
        return None
    arr = np.asarray(matrix, dtype=np.float64)
    return arr if arr.shape == (k, k) else None


def _true_noise_rate(prepared: Prepared) -> float | None:
    known = prepared.train.truth_known
    if known is None or not known.any():
        return None
    return float(prepared.noise_mask[known].mean())


def write_report(
    inputs: ReportInputs, out: ReportPaths, *, top_k: int | None = None
) -> ReportSummary:
    """Write every file in `out`; return the counts the stage prints."""
    prepared, correction = inputs.prepared, inputs.correction
    train, k = prepared.train, prepared.num_classes
    probs = None if inputs.view is None else inputs.view.probs
    suggested = suggested_labels(train.labels, correction, probs)
    kwargs = {} if top_k is None else {"top_k": top_k}
    shown = save_label_issue_gallery(out.gallery, prepared, correction, suggested, **kwargs)

    networks = int(inputs.params.get("method.networks", 2))
    rows = combine(inputs.histories, inputs.metrics)
    save_curves_csv(out.curves, rows)
    save_curves_figure(out.curves_png, rows, _true_noise_rate(prepared))

    mask, known = prepared.noise_mask, train.truth_known
    warm, final = inputs.divisions.get("warmup"), inputs.divisions.get("train")
    for path, division in ((out.gmm_warmup, warm), (out.gmm_train, final)):
        table = gmm.histogram_rows(division, mask, known, networks=max(networks, 2))
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    save_gmm_figure(
        out.gmm_png, [("End of warm-up", warm), ("End of training", final)], mask, known
    )

    estimated = transition.estimate(suggested, train.labels, k)
    transition.save_transition_figure(
        out.transition_png, estimated, prepared.classes, _true_transition(prepared.meta, k)
    )

    if inputs.view is not None:
        pairs = di.near_duplicates(inputs.view.features, train.labels)
        far = di.outliers(inputs.view.features, suggested, k)
    else:
        pairs, far = [], []
        inputs.notes.append("Near-duplicates and outliers need the final networks' features.")
    di.save_data_issues_csv(out.data_issues, pairs + far, prepared)
    di.save_pairs_figure(out.duplicates_png, pairs, prepared)
    di.save_outliers_figure(out.outliers_png, far, prepared)
    with open(out.data_issues, newline="") as fh:
        written = list(csv.DictReader(fh))
    half = DATA_ISSUE_ROWS // 2
    listed = [r for r in written if r["kind"] == "near_duplicate"][:half]
    listed += [r for r in written if r["kind"] == "outlier"][:half]

    order = issue_order(correction, train.labels)
    data = ReportData(
        metrics=inputs.metrics,
        meta=prepared.meta,
        params=inputs.params,
        figures={
            "curves": out.curves_png,
            "gmm": out.gmm_png,
            "gallery": out.gallery,
            "transition": out.transition_png,
            "confusion": inputs.confusion_png,
            "duplicates": out.duplicates_png,
            "outliers": out.outliers_png,
        },
        issues=_issue_rows(prepared, correction, suggested, order[:TABLE_ROWS]),
        num_flagged=len(order),
        data_issues=listed,
        num_duplicates=len(pairs),
        num_outliers=len(far),
        per_class=_per_class(prepared, correction, inputs.per_class),
        mlflow=inputs.mlflow,
        files=inputs.files,
        subtitle=_subtitle(prepared),  # no clock time: identical runs, identical reports
        notes=inputs.notes,
        thresholds={"duplicate_factor": di.DUPLICATE_FACTOR, "outlier_z": di.OUTLIER_Z},
    )
    Path(out.report).write_text(render(data), encoding="utf-8")
    return ReportSummary(len(order), len(pairs), len(far), shown)


def _subtitle(prepared: Prepared) -> str:
    """The data set in one line (source, size, noise) for the report's header."""
    meta = prepared.meta
    source = (meta.get("source") or {}).get("type", "data")
    noise = meta.get("noise") or {}
    kind = noise.get("type", "none")
    noisy = "no injected noise" if kind == "none" else f"{kind} noise {noise.get('rate')}"
    return f"{source} · {len(prepared.train)} training images · {noisy}"
