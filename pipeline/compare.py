"""`noisyflow compare`: one table row per pipeline (parent) run recorded in MLflow.

The parent run holds the flattened params.yaml and, once `evaluate` ran, its headline metrics,
so the table needs one search over parent runs and nothing else.
"""

from __future__ import annotations

import argparse
import time
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
    print(format_table([row(r) for r in runs]))
    return 0


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
