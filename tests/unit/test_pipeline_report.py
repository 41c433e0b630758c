"""pipeline.report: metrics, label-issue count and the markdown the flows publish."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.report import (
    HEADLINE,
    count_label_issues,
    read_metrics,
    run_report,
    sweep_report,
    sweep_rows,
)

METRICS = {k: 0.5 + i / 10 for i, k in enumerate(HEADLINE)} | {"given_label_accuracy": 0.6}


def _workspace(tmp_path: Path) -> Path:
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs/label_issues.csv").write_text(
        "index,given_label,corrected_label,label_quality,is_label_issue,prototype_label\n"
        "0,1,1,0.9,False,1\n1,2,3,0.1,True,3\n2,4,5,0.2,True,5\n"
    )
    return tmp_path


def test_reads_metrics_and_counts_issues(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    assert read_metrics(root) == METRICS
    assert count_label_issues(root) == 2
    assert read_metrics(tmp_path / "missing") == {}
    assert count_label_issues(tmp_path / "missing") is None


def test_run_report_holds_headline_metrics_issues_and_parent(tmp_path: Path) -> None:
    parent = {"run_id": "abc123", "url": "runs:/abc123", "tracking_uri": "sqlite:///x.db"}
    text = run_report(
        metrics=METRICS, label_issues=2, parent=parent, flow_run_id="flow-1", experiment="e1"
    )
    for key in HEADLINE:
        assert f"| {key} | {METRICS[key]:.4f} |" in text
    assert "given_label_accuracy" not in text
    assert "label issues found: **2**" in text
    assert "`abc123`" in text and "runs:/abc123" in text and "`flow-1`" in text
    assert "none" in run_report(metrics={}, label_issues=None, parent=None, flow_run_id="f")


def test_sweep_table_has_one_row_per_experiment() -> None:
    results = [
        {"name": "a", "overrides": {"data.noise.rate": 0.2}, "metrics": METRICS},
        {"name": "b", "overrides": {}, "metrics": {}},
    ]
    rows = sweep_rows(results)
    assert rows[0]["overrides"] == "data.noise.rate=0.2"
    assert rows[1]["overrides"] == "(baseline)" and rows[1]["test_accuracy"] is None
    text = sweep_report(results)
    assert text.count("\n| a |") == 1 and "| b | (baseline) | – |" in text
