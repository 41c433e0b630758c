"""The run report on a real tiny pipeline: `dvc plots show` and `dvc plots diff` between two
experiments, the report evaluate writes (numbers, MLflow run and artifact, the `noisyflow
report` command, `compare --html`), and the page rendered in headless Chromium."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from pipeline.cli import main as cli
from pipeline.report import find_report, run_report
from tests.helpers import dvc, make_dvc_project, parse, subprocess_env

PNG = "data:image/png;base64,"

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("NOISYFLOW_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("NOISYFLOW_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
)


def env() -> dict[str, str]:
    e = subprocess_env()
    e.pop("MLFLOW_TRACKING_URI", None)  # the project's own mlflow.db
    e.pop("NOISYFLOW_RUN_GROUP", None)
    return e


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny project with two experiments: `base`, and `alpha09` (another correction loss
    weight: only `correct` and `evaluate` rerun). The workspace holds `alpha09`."""
    root = make_dvc_project(tmp_path_factory.mktemp("report") / "project")
    dvc(root, "exp", "run", "-n", "base", env=env())
    dvc(root, "exp", "run", "-n", "alpha09", "-S", "correction.prototype.alpha=0.9", env=env())
    return root


def plots_json(root: Path, *args: str) -> dict:
    proc = dvc(root, "plots", *args, "--json", env=env())
    return json.loads(proc.stdout)


def declared_plots(root: Path) -> list[str]:
    spec = yaml.safe_load((root / "dvc.yaml").read_text())["plots"]
    return [p if isinstance(p, str) else next(iter(p)) for p in spec]


def errors_of(out: dict, names: list[str]) -> list[dict]:
    """DVC's errors about the plots dvc.yaml's top-level `plots:` declares. (The per-stage plots
    of warmup/train/correct are `cache: false` files the repository's .gitignore keeps out of
    git, so experiments do not carry them; the top-level plots read evaluate's cached files.)"""
    return [e for e in out.get("errors") or [] if e.get("name") in names]


def test_dvc_plots_show_draws_every_declared_plot(project):
    out = plots_json(project, "show")
    assert not out.get("errors"), out.get("errors")  # the workspace has every file
    for name in declared_plots(project):
        (entry,) = out["data"][name]
        if entry["type"] == "image":
            with Image.open(entry["url"]) as im:
                im.load()
            continue
        values = entry["content"]["data"]["values"]
        assert values, name
        if name.startswith(("Training loss (", "Test accuracy", "Fraction judged")):
            assert any(v.get("dvc_inferred_y_value", "") != "" for v in values), name


def test_dvc_plots_diff_compares_two_experiments(project):
    out = plots_json(project, "diff", "base", "alpha09")
    names = declared_plots(project)
    assert not errors_of(out, names), errors_of(out, names)
    for name in names:
        entries = out["data"][name]
        revs = {r for e in entries for r in e["revisions"]}
        assert revs == {"base", "alpha09"}, (name, revs)
        for e in entries:
            if e["type"] == "image":
                assert Path(e["url"]).is_file()
            else:
                assert {v["rev"] for v in e["content"]["data"]["values"]} == {"base", "alpha09"}


def test_the_report_of_a_real_run(project, tmp_path, capsys, monkeypatch):
    page = parse((project / "outputs/report.html").read_text(encoding="utf-8"))
    metrics = json.loads((project / "metrics.json").read_text())
    for key, value in metrics.items():
        if value is None:
            continue
        shown = str(int(value)) if key.startswith("num_") else f"{value:.6f}"
        assert shown in page.cells, key
    assert len(page.imgs) >= 6 and all(src.startswith(PNG) for src in page.imgs)
    run_id = page.meta["noisyflow:mlflow-run-id"]
    assert run_id and page.meta["noisyflow:mlflow-parent-run-id"]
    text = (project / "outputs/report.html").read_text(encoding="utf-8")
    assert "#/experiments/" in text  # the pipeline run was found under `dvc exp run`
    with open(project / "outputs/data_issues.csv", newline="") as fh:
        assert csv.DictReader(fh).fieldnames[:3] == ["kind", "index", "path"]

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    assert [a.path for a in client.list_artifacts(run_id, "report")] == ["report/report.html"]
    assert client.get_run(run_id).data.tags["noisyflow.report"] == "report/report.html"

    found = find_report(project)
    assert found["run_id"] == run_id
    markdown = run_report(
        metrics=metrics, label_issues=1, parent=None, flow_run_id="f", report=found
    )
    assert f"runs:/{run_id}/report/report.html" in markdown

    assert cli(["report", "--project-dir", str(project)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == str(project / "outputs/report.html")
    gallery = tmp_path / "gallery_3.png"
    assert (
        cli(
            [
                "report",
                "--project-dir",
                str(project),
                "--class",
                "3",
                "--top",
                "8",
                "--out",
                str(gallery),
            ]
        )
        == 0
    )
    with Image.open(gallery) as im:
        im.load()
    assert cli(["report", "--project-dir", str(project), "--class", "nope"]) == 2
    assert "the classes are: 0, 1" in capsys.readouterr().err

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    side = tmp_path / "compare.html"
    assert cli(["compare", "--last", "2", "--html", str(side)]) == 0
    compared = parse(side.read_text(encoding="utf-8"))
    assert {"base", "alpha09"} <= set(compared.cells)
    assert len(compared.imgs) == 1 and compared.imgs[0].startswith(PNG)


def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).is_file() or shutil.which(p))]
    if missing:
        pytest.skip(
            f"Chromium not installed ({', '.join(missing)} missing): "
            "apt-get install -y chromium chromium-driver (make browser)"
        )
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument("--window-size=1280,900")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def test_report_renders_in_headless_chromium(project, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    report = project / "outputs/report.html"
    driver = _browser()
    try:
        driver.get(report.resolve().as_uri())
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script(
                "return document.readyState === 'complete' && "
                "Array.from(document.images).every(i => i.complete)"
            )
        )
        table = driver.find_element(By.ID, "metrics-table")
        assert table.is_displayed() and table.size["height"] > 100
        assert "test_accuracy" in table.text
        widths = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.naturalWidth])"
        )
        assert len(widths) >= 6 and all(w > 0 for _, w in widths), widths
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(int(height), 20000))
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    with Image.open(shot) as im:
        im.load()
        assert im.size[0] == 1280 and im.size[1] > 3000
    print(f"report: {report.stat().st_size} bytes; screenshot: {shot}", file=sys.stderr)
