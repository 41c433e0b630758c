"""`noisyflow compare`: one table row per pipeline (parent) run recorded in MLflow.

The parent run holds the flattened params.yaml and, once `evaluate` ran, its headline metrics,
so the table needs one search over parent runs and nothing else. `--html PATH` also writes a
self-contained page with the runs side by side, including the per-epoch curves of each run's
`train` stage (its child run in MLflow).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

COLUMNS = (
    "run",
    "started",
    "status",
    "noise",
    "method",
    "model",
    "epochs",
    "p_thr",
    "test_acc",
    "det_f1",
    "wall",
)


def compare_cli(args: argparse.Namespace) -> int:
    from noisyflow import tracking

    runs = tracking.pipeline_runs(args.experiment, last=args.last)
    if not runs:
        print(f"no pipeline runs in experiment {args.experiment!r} ({tracking.tracking_uri()})")
        return 0
    rows = [row(r) for r in runs]
    print(format_table(rows))
    if getattr(args, "html", None):
        from noisyflow.report.compare_page import CURVES, render

        histories = train_histories(runs, [key for key, _ in CURVES])
        out = Path(args.html)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(runs, rows, histories), encoding="utf-8")
        print(f"wrote {out}")
    return 0


def train_histories(
    runs: list[dict[str, Any]], keys: list[str]
) -> list[dict[str, list[tuple[int, float]]]]:
    """Per pipeline run: {key: [(epoch, value)]} logged by its newest `train` child run
    (empty when the run has none, e.g. DVC found train up to date)."""
    import mlflow

    from noisyflow import tracking

    client = mlflow.MlflowClient(tracking_uri=tracking.tracking_uri())
    out = []
    for run in runs:
        exp_id = client.get_run(run["run_id"]).info.experiment_id
        found = client.search_runs(
            [exp_id],
            filter_string=(
                f"tags.mlflow.parentRunId = '{run['run_id']}' and tags.`{tracking.STAGE_TAG}` = "
                "'train'"
            ),
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        hist: dict[str, list[tuple[int, float]]] = {}
        if found:
            child = found[0].info.run_id
            for key in keys:
                points = client.get_metric_history(child, key)
                if points:
                    hist[key] = sorted((int(m.step), float(m.value)) for m in points)
        out.append(hist)
    return out


def row(run: dict[str, Any]) -> dict[str, str]:
    """One table row from a `tracking.pipeline_runs` entry; '-' where a value is missing."""
    p, m = run["params"], run["metrics"]
    end = run["end_ms"] if run["status"] != "RUNNING" else None
    return {
        "run": run["name"],
        "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(run["start_ms"] / 1000)),
        "status": run["status"],
        "noise": f"{p.get('data.noise.type', '-')} {p.get('data.noise.rate', '')}".strip(),
        "method": "+".join(p.get(f"method.{k}", "-") for k in ("selection", "ssl", "correction")),
        "model": f"{p.get('model.arch', '-')}/{p.get('model.width', '-')}",
        "epochs": f"{p.get('warmup.epochs', '-')}+{p.get('train.epochs', '-')}",
        "p_thr": p.get(f"selection.{p.get('method.selection', 'gmm')}.p_threshold", "-"),
        "test_acc": _number(m.get("test_accuracy")),
        "det_f1": _number(m.get("detection_f1")),
        "wall": _duration(run["start_ms"], end),
    }


def format_table(rows: list[dict[str, str]]) -> str:
    """Left-aligned text columns, right-aligned numbers, two spaces apart."""
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in COLUMNS}
    numeric = {"test_acc", "det_f1", "wall"}

    def line(cells: dict[str, str]) -> str:
        parts = [
            cells[c].rjust(widths[c]) if c in numeric else cells[c].ljust(widths[c])
            for c in COLUMNS
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line({c: c for c in COLUMNS}), *(line(r) for r in rows)])


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _duration(start_ms: int, end_ms: int | None) -> str:
    if not end_ms:
        return "-"
    seconds = round((end_ms - start_ms) / 1000)
    return f"{seconds // 60}m{seconds % 60:02d}s"
