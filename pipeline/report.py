"""Run reports: read a finished workspace's metrics, label issues and HTML report, render
markdown tables, and the `noisyflow report` command.

Pure functions of files and dicts (no Prefect), so unit tests can call them directly; the flow
publishes what they return as Prefect artifacts.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from html.parser import HTMLParser
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
REPORT_FILE = "outputs/report.html"  # written by the evaluate stage
REPORT_ARTIFACT = "report/report.html"  # the same file in the evaluate run's MLflow artifacts
GALLERY_DIR = "plots"


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
    report: dict[str, Any] | None = None,
) -> str:
    """Markdown for one pipeline run: headline metrics, label issues, the MLflow parent run and
    the HTML report (`report` as `find_report` returns it)."""
    rows = [{"metric": k, "value": metrics.get(k)} for k in HEADLINE]
    lines = ["# noisyflow pipeline run", "", markdown_table(rows, ["metric", "value"]), ""]
    lines.append(f"- label issues found: **{_fmt(label_issues)}**")
    if report:
        where = f"- run report (HTML): [{report['path']}]({report['uri']})"
        if report.get("artifact"):
            where += f"; in MLflow: `{report['artifact']}`"
        lines.append(where)
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


class _MetaTags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            a = dict(attrs)
            name = a.get("name") or ""
            if name.startswith("noisyflow:") and a.get("content") is not None:
                self.found[name.removeprefix("noisyflow:")] = str(a["content"])


def find_report(root: Path) -> dict[str, Any] | None:
    """The workspace's HTML report (outputs/report.html), or None when evaluate has not run.

    Returns {"path", "uri" (file://), "created", "run_id" / "parent_run_id" / "tracking_uri"
    (the MLflow runs, when tracked), "artifact" (runs:/<evaluate run>/report/report.html)}.
    """
    path = (Path(root) / REPORT_FILE).resolve()
    if not path.is_file():
        return None
    parser = _MetaTags()
    with open(path, encoding="utf-8") as fh:
        head = fh.read(1 << 16)  # the meta tags are in <head>
    parser.feed(head[: head.find("<style>")] if "<style>" in head else head)
    meta = parser.found
    written = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(path.stat().st_mtime))
    out: dict[str, Any] = {"path": str(path), "uri": path.as_uri(), "created": written}
    out["data"] = meta.get("data")
    if meta.get("mlflow-run-id"):
        out.update(
            run_id=meta["mlflow-run-id"],
            parent_run_id=meta.get("mlflow-parent-run-id"),
            tracking_uri=meta.get("mlflow-tracking-uri"),
            url=meta.get("mlflow-url") or None,
            artifact=f"runs:/{meta['mlflow-run-id']}/{REPORT_ARTIFACT}",
        )
    return out


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "class"


def class_gallery(root: Path, class_name: str, *, top_k: int, out: Path | None = None) -> Path:
    """Draw the label-issue gallery of the images labelled `class_name` (the run's gallery,
    restricted to one class); returns the PNG's path (default plots/label_issues_gallery_<name>)."""
    import numpy as np

    from noisyflow.artifacts import load_label_issues
    from noisyflow.data.prepare import load_prepared
    from noisyflow.errors import InputDataError
    from noisyflow.report.gallery import issue_order, save_label_issue_gallery, suggested_labels

    root = Path(root)
    prepared = load_prepared(root / "data/prepared")
    if class_name not in prepared.classes:
        raise InputDataError(
            f"no class {class_name!r}; the classes are: {', '.join(prepared.classes)}"
        )
    correction = load_label_issues(root / ISSUES_FILE, prepared)
    rows = issue_order(correction, prepared.labels, prepared.classes.index(class_name))[:top_k]
    probs = _final_probs(root / "models/final.pt", prepared, rows)
    full = None
    if probs is not None:
        full = np.zeros((len(prepared.labels), prepared.num_classes), dtype=np.float32)
        full[rows] = probs
    suggested = suggested_labels(prepared.labels, correction, full)
    target = out or root / GALLERY_DIR / f"label_issues_gallery_{_slug(class_name)}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    save_label_issue_gallery(
        target, prepared, correction, suggested, top_k=top_k, class_name=class_name
    )
    return target


def _final_probs(model: Path, prepared: Any, rows: Any) -> Any:
    """The final networks' mean probabilities on training rows `rows` (None without a model)."""
    if not model.is_file() or not len(rows):
        return None
    from noisyflow import recipes
    from noisyflow.io import load_checkpoint
    from noisyflow.report.features import net_view
    from noisyflow.train.runtime import Runtime

    runtime = Runtime.cpu()
    _, nets = recipes.load_nets(load_checkpoint(model), runtime, origin=str(model))
    x = prepared.train.x[rows]
    return net_view(nets, x, prepared.labels[rows], runtime).probs


def report_cli(args: argparse.Namespace) -> int:
    """`noisyflow report`: where the latest report is (or open it); --class draws a gallery."""
    root = Path(args.project_dir)
    if args.class_name is not None:
        out = None if args.out is None else Path(args.out)
        path = class_gallery(root, args.class_name, top_k=args.top, out=out)
        print(path.resolve())
        return _open(path.resolve().as_uri()) if args.open else 0
    found = find_report(root)
    if found is None:
        print(
            f"no report in {root.resolve()}: run the pipeline first (`dvc repro` or "
            "`noisyflow run`); the evaluate stage writes " + REPORT_FILE,
            file=sys.stderr,
        )
        return 1
    print(found["path"])
    if found.get("created"):
        print(f"  written {found['created']}")
    if found.get("artifact"):
        print(f"  MLflow: pipeline run {found.get('parent_run_id')}, artifact {found['artifact']}")
    if found.get("url"):
        print(f"  {found['url']}")
    return _open(found["uri"]) if args.open else 0


def _open(uri: str) -> int:
    import webbrowser

    if webbrowser.open(uri):
        return 0
    print(f"could not start a browser here; open {uri}", file=sys.stderr)
    return 1
