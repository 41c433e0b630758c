"""`noisyflow compare --html`: several pipeline runs side by side on one self-contained page:
what differs in their parameters, their metrics, and their per-epoch curves overlaid."""

from __future__ import annotations

import io
import time
from typing import Any

from noisyflow.report.figure import pyplot
from noisyflow.report.html import data_uri, esc, how, number, page, table
from noisyflow.report.page import METRIC_HELP

CURVES = (
    ("test_accuracy", "Test accuracy (ensemble)"),
    ("estimated_noise_rate", "Estimated noise rate"),
    ("labelled_frac_net1", "Fraction judged clean (network 1)"),
    ("detection_f1", "Noisy-label detection F1 (truth known)"),
)
HIGHER_IS_BETTER = {
    "test_accuracy",
    "test_accuracy_net1",
    "test_accuracy_net2",
    "val_accuracy",
    "detection_precision",
    "detection_recall",
    "detection_f1",
    "detection_auroc",
    "correction_accuracy",
}
Series = list[tuple[int, float]]


def curves_png(names: list[str], histories: list[dict[str, Series]]) -> bytes:
    """2 x 2 panels (CURVES), one line per run, as PNG bytes."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4))
    for ax, (key, title) in zip(axes.flat, CURVES, strict=True):
        drew = False
        for name, hist in zip(names, histories, strict=True):
            pts = sorted(hist.get(key, []))
            if pts:
                drew = True
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=name)
        ax.set(title=title, xlabel="training epoch")
        ax.grid(alpha=0.25)
        if drew:
            ax.legend(fontsize=7, frameon=False)
        else:
            ax.text(0.5, 0.5, "not logged by these runs", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def differing_params(runs: list[dict[str, Any]]) -> list[str]:
    keys = sorted({k for r in runs for k in r["params"]})
    return [k for k in keys if len({r["params"].get(k) for r in runs}) > 1]


def metric_rows(runs: list[dict[str, Any]]) -> tuple[list[list[str]], list[str]]:
    keys = {k for r in runs for k in r["metrics"]}
    ordered = [k for k in METRIC_HELP if k in keys] + sorted(keys - set(METRIC_HELP))
    rows = []
    for k in ordered:
        values = [r["metrics"].get(k) for r in runs]
        best = None
        if k in HIGHER_IS_BETTER and any(v is not None for v in values) and len(runs) > 1:
            best = max(v for v in values if v is not None)
        cells = [esc(k)]
        for v in values:
            text = esc(number(v, 4))
            cells.append(f"<b>{text}</b>" if best is not None and v == best else text)
        rows.append(cells)
    return rows, ordered


def render(
    runs: list[dict[str, Any]], overview: list[dict[str, str]], histories: list[dict[str, Series]]
) -> str:
    """runs: `tracking.pipeline_runs` entries; overview: `compare.row` of each; histories: per
    run {metric: [(epoch, value)]} of its train stage."""
    names = [r["name"] for r in runs]
    fields = [f for f in (overview[0] if overview else {}) if f != "run"]
    run_rows = [[esc(f)] + [esc(o[f]) for o in overview] for f in fields]
    run_rows.append(["MLflow run id"] + [f"<code>{esc(r['run_id'])}</code>" for r in runs])
    metric_body, _ = metric_rows(runs)
    diff = differing_params(runs)
    param_body = [[esc(k)] + [esc(r["params"].get(k, "–")) for r in runs] for k in diff]
    header = [""] + names  # table() escapes the header itself
    every = list(range(len(header)))
    body = (
        f"<header><h1>noisyflow: {len(runs)} pipeline runs side by side</h1>"
        f'<p class="sub">{esc(time.strftime("%Y-%m-%d %H:%M:%S %Z"))} · newest first</p>'
        "</header>"
        "<h2>Runs</h2>" + table(header, run_rows, raw=every) + "<h2>Metrics</h2>"
        "<p>The best value of each score is in bold.</p>"
        + table(header, metric_body, raw=every, numeric=every[1:], id="metrics-table")
        + "<h2>Parameters that differ</h2>"
        + (
            table(header, param_body, raw=every)
            if param_body
            else "<p>All recorded parameters are the same.</p>"
        )
        + "<h2>Curves</h2>"
        + how(
            "Per training epoch, from each run's <code>train</code> stage in MLflow, one line "
            "per run."
        )
        + f'<figure><img src="{data_uri(curves_png(names, histories))}" alt="curves"></figure>'
    )
    return page("noisyflow run comparison", body)
