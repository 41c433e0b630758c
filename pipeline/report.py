"""Run reports: read a finished workspace's metrics and label issues, render markdown tables.

Pure functions of files and dicts (no Prefect), so unit tests can call them directly; the flow
publishes what they return as Prefect artifacts.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

HEADLINE = (
    "test_accuracy",
    "detection_f1",
    "detection_auroc",
    "correction_accuracy",
    "estimated_noise_rate",
)
METRICS_FILE = "metrics.json"
ISSUES_FILE = "outputs/label_issues.csv"


def read_metrics(root: Path) -> dict[str, float]:
    """metrics.json of the workspace ({} when the evaluate stage has not written it)."""
    path = Path(root) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def count_label_issues(root: Path) -> int | None:
    """Rows of outputs/label_issues.csv whose is_label_issue is True (None if no file)."""
    path = Path(root) / ISSUES_FILE
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        return sum(row["is_label_issue"] == "True" for row in csv.DictReader(fh))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "–" if value is None else str(value)


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A GitHub markdown table of `rows` (missing cells shown as –)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def run_report(
    *,
    metrics: dict[str, float],
    label_issues: int | None,
    parent: dict[str, Any] | None,
    flow_run_id: str,
    experiment: str | None = None,
) -> str:
    """Markdown for one pipeline run: headline metrics, label issues, the MLflow parent run."""
    rows = [{"metric": k, "value": metrics.get(k)} for k in HEADLINE]
    lines = ["# noisyflow pipeline run", "", markdown_table(rows, ["metric", "value"]), ""]
    lines.append(f"- label issues found: **{_fmt(label_issues)}**")
    if parent:
        lines.append(f"- MLflow parent run: `{parent['run_id']}` ({parent['url']})")
        lines.append(f"- MLflow tracking URI: `{parent['tracking_uri']}`")
    else:
        lines.append("- MLflow parent run: none (DVC found every stage up to date)")
    lines.append(f"- Prefect flow run: `{flow_run_id}`")
    if experiment:
        lines.append(f"- DVC experiment: `{experiment}`")
    return "\n".join(lines) + "\n"


def sweep_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten sweep results ({name, overrides, metrics}) into one row per experiment."""
    rows = []
    for res in results:
        overrides = ", ".join(f"{k}={v}" for k, v in res["overrides"].items())
        rows.append(
            {"name": res["name"], "overrides": overrides or "(baseline)"}
            | {k: res["metrics"].get(k) for k in HEADLINE}
        )
    return rows


def sweep_report(results: list[dict[str, Any]]) -> str:
    """Markdown comparison table of a sweep."""
    table = markdown_table(sweep_rows(results), ["name", "overrides", *HEADLINE])
    return "# noisyflow sweep\n\n" + table + "\n"
