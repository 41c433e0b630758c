"""The run report's builders on tiny synthetic inputs: every figure is a PNG that decodes, the
tables have their documented columns, the GMM picture evaluates the split's own fit, the data
issues find planted duplicates and outliers, and the HTML page parses, holds every section and
the metrics as metrics.json has them, and loads nothing from outside."""

from __future__ import annotations

import csv
import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from noisyflow.methods.selection.gmm import GMMParams, fit_clean_probability
from noisyflow.report import curves, data_issues, gallery, gmm, transition
from noisyflow.report.build import ReportInputs, ReportPaths, mlflow_links, write_report
from noisyflow.report.compare_page import render as render_compare
from noisyflow.report.features import NetView, unit
from noisyflow.report.gmm_figure import save_gmm_figure
from noisyflow.report.page import SECTIONS
from noisyflow.report.tiles import Tile, save_tile_grid, shorten, side_by_side
from noisyflow.types import Correction, Division, Prepared, Split
from pipeline.report import find_report, run_report
from tests.helpers import parse

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("cat", "dog", "bird")
N, K = 90, 3


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.load()  # decodes the whole image
        assert im.format == "PNG"
        return im.size


def make_prepared(*, paths: bool = False, truth: bool = True, channels: int = 1) -> Prepared:
    rng = np.random.default_rng(0)
    true = np.repeat(np.arange(K), N // K)
    labels = true.copy()
    flip = rng.choice(N, size=N // 5, replace=False)
    labels[flip] = (true[flip] + 1) % K  # pairwise noise: c -> c + 1
    x = rng.integers(0, 256, size=(N, 8, 8, channels), dtype=np.uint8)
    names = np.array([f"photos/{CLASSES[c]}/img_{i:03d}.jpg" for i, c in enumerate(labels)])
    t = np.eye(K) * 0.8 + np.roll(np.eye(K), 1, axis=1) * 0.2
    meta = {
        "classes": list(CLASSES),
        "counts": {"train": N, "test": 12},
        "image_shape": [8, 8, channels],
        "noise": {
            "type": "asymmetric",
            "rate": 0.2,
            "realised_rate": 0.2,
            "transition_matrix": t.tolist() if truth else None,
        },
        "truth": "all" if truth else "none",
        "truth_note": "synthetic",
        "source": {
            "type": "imagefolder" if paths else "npz",
            "has_paths": paths,
            "path": "photos" if paths else "x.npz",
        },
        "preprocessing": {"size": [8, 8], "channels": channels},
    }
    train = Split(x, labels, np.arange(N) + 100, true if truth else None, names if paths else None)
    test = Split(x[:12], true[:12], np.arange(12))
    return Prepared(train, test, CLASSES, None, meta)


def make_correction(prepared: Prepared) -> Correction:
    labels = prepared.labels
    noisy = prepared.train.noise_mask
    if noisy is None:
        noisy = np.zeros(N, dtype=bool)
        noisy[::5] = True
    quality = np.where(noisy, np.linspace(0.01, 0.3, N), 0.9)
    flagged = noisy.copy()
    flagged[1] = True  # a false alarm
    corrected = np.where(flagged, (labels + 2) % K, labels)  # undo c -> c + 1
    corrected[np.flatnonzero(flagged)[:3]] = labels[np.flatnonzero(flagged)[:3]]  # kept
    return Correction(corrected, quality, flagged, np.full(N, -1))


def make_division(prepared: Prepared, nets: int = 2) -> Division:
    rng = np.random.default_rng(1)
    noisy = prepared.train.noise_mask
    probs, fits, losses = [], [], []
    for _ in range(nets):
        loss = np.where(noisy, rng.normal(2.0, 0.3, N), rng.normal(0.3, 0.1, N)).clip(0.01)
        prob, fit = fit_clean_probability(loss, GMMParams())
        probs.append(prob)
        fits.append(fit)
        losses.append(loss)
    prob = np.stack(probs)
    return Division(prob, prob > 0.5, np.ones_like(prob), np.stack(losses), tuple(fits))


def histories() -> dict[str, list[dict[str, float]]]:
    return {
        "warmup": [
            {"epoch": e, "loss_net1": 2 - e / 4, "loss_net2": 2.1 - e / 4} for e in range(3)
        ],
        "train": [
            {
                "epoch": e,
                "loss_net1": 1.0,
                "loss_x_net1": 0.8,
                "loss_u_net1": 0.2,
                "test_accuracy": 0.5 + e / 10,
                "labelled_frac_net1": 0.7,
                "estimated_noise_rate": 0.25,
                "detection_f1": 0.8,
            }
            for e in range(4)
        ],
        "correct": [{"epoch": 0, "loss_net1": 0.5, "pseudo_changed_net1": 0.1}],
    }


METRICS = {
    "test_accuracy": 0.916667,
    "test_accuracy_net1": 0.833333,
    "test_accuracy_net2": 0.75,
    "detection_f1": 0.954545,
    "detection_auroc": 0.987654,
    "correction_accuracy": 0.966667,
    "given_label_accuracy": 0.8,
    "estimated_noise_rate": 0.211111,
    "num_label_issues": 19.0,
    "num_corrected": 16.0,
    "truth_known_fraction": 1.0,
}


def report_paths(root: Path) -> ReportPaths:
    names = {
        "report": "report.html",
        "data_issues": "data_issues.csv",
        "curves": "curves.csv",
        "gmm_warmup": "gmm_warmup.csv",
        "gmm_train": "gmm_train.csv",
    }
    return ReportPaths(
        **{f: root / names.get(f, f"{f}.png") for f in ReportPaths.__dataclass_fields__}
    )


def view_for(prepared: Prepared, *, duplicate: tuple[int, int] | None = None) -> NetView:
    rng = np.random.default_rng(2)
    centres = unit(rng.normal(size=(K, 16)))
    feats = unit(centres[prepared.train.true_labels] + 0.15 * rng.normal(size=(N, 16)))
    if duplicate is not None:
        feats[duplicate[1]] = feats[duplicate[0]]
    probs = np.full((N, K), 0.1)
    probs[np.arange(N), prepared.train.true_labels] = 0.8
    return NetView(feats.astype(np.float32), probs)


# ----------------------------------------------------------------------------- the mixture


def test_gmm_picture_evaluates_the_split_own_fit():
    prepared = make_prepared()
    division = make_division(prepared)
    for k in range(2):
        fit = division.fits[k]
        x = gmm.normalised(division.loss[k], fit)
        assert np.allclose(gmm.clean_posterior(fit, x), division.clean_prob[k], atol=1e-4)
        cut = gmm.loss_threshold(fit)
        clean_mean = fit["means"][fit["clean_component"]]
        assert clean_mean < cut < 1
        right = x > clean_mean
        assert (division.clean_prob[k][right & (x < cut - 1e-3)] > 0.5).all()
        assert (division.clean_prob[k][right & (x > cut + 1e-3)] <= 0.5).all()
        assert gmm.raw_loss(fit, 0.0) == pytest.approx(fit["low"])


def test_histogram_rows_have_fixed_columns_and_add_up():
    prepared = make_prepared()
    division = make_division(prepared, nets=1)
    rows = gmm.histogram_rows(division, prepared.noise_mask, prepared.train.truth_known)
    assert len(rows) == gmm.BINS
    cols = list(rows[0])
    assert cols[0] == "bin" and "gmm_clean_net2" in cols and "prob_noisy_net1" in cols
    width = 1 / gmm.BINS
    total = sum(r["loss_all_net1"] for r in rows) * width
    assert total == pytest.approx(1.0, abs=1e-3)
    for r in rows:
        assert r["loss_clean_net1"] + r["loss_noisy_net1"] == pytest.approx(r["loss_all_net1"])
        assert r["loss_all_net2"] == ""  # one network: the column exists, empty
    unknown = gmm.histogram_rows(division, None, None)
    assert list(unknown[0]) == cols and unknown[0]["loss_clean_net1"] == ""
    assert list(gmm.histogram_rows(None, None, None)[0]) == cols


def test_gmm_figure_draws_both_phases_and_copes_with_gaps(tmp_path):
    prepared = make_prepared()
    division = make_division(prepared)
    no_fit = Division(
        division.clean_prob,
        division.labelled,
        division.weight,
        division.loss,
        ({"kind": "aum"}, {}),
    )
    out = tmp_path / "gmm.png"
    save_gmm_figure(
        out,
        [("End of warm-up", division), ("End of training", no_fit)],
        prepared.noise_mask,
        prepared.train.truth_known,
    )
    w, h = png_size(out)
    assert 800 < w < 1300 and 500 < h < 900
    save_gmm_figure(out, [("End of warm-up", None), ("End of training", division)], None, None)
    png_size(out)


# ----------------------------------------------------------------------------- gallery


def test_gallery_orders_flagged_rows_by_quality_and_suggests_classes(tmp_path):
    prepared = make_prepared(paths=True)
    correction = make_correction(prepared)
    order = gallery.issue_order(correction, prepared.labels)
    assert correction.is_label_issue[order].all() and len(order) == correction.is_label_issue.sum()
    assert (np.diff(correction.label_quality[order]) >= 0).all()
    dogs = gallery.issue_order(correction, prepared.labels, CLASSES.index("dog"))
    assert set(prepared.labels[dogs]) == {1}
    probs = np.full((N, K), 0.2)
    probs[:, 0] = 0.6  # the networks' first choice: class 0, else class 1 / 2 tie -> 1
    suggested = gallery.suggested_labels(prepared.labels, correction, probs)
    changed = correction.corrected_label != prepared.labels
    assert (suggested[changed] == correction.corrected_label[changed]).all()
    kept = correction.is_label_issue & ~changed
    assert kept.sum() == 3 and (suggested[kept] != prepared.labels[kept]).all()
    assert (
        suggested[~correction.is_label_issue] == prepared.labels[~correction.is_label_issue]
    ).all()
    out = tmp_path / "gallery.png"
    shown = gallery.save_label_issue_gallery(out, prepared, correction, suggested, top_k=10)
    assert list(shown) == list(order[:10])
    w, h = png_size(out)
    assert w >= 600 and h >= 300
    tiles = gallery.issue_tiles(prepared, correction, suggested, order[:2])
    assert tiles[0].lines[0].startswith("#1  quality")
    assert tiles[0].lines[1] == f"given: {CLASSES[prepared.labels[order[0]]]}"
    assert tiles[0].lines[-1].endswith(".jpg")  # the file name, so a person can find it
    assert tiles[0].edge in (gallery.WRONG, gallery.RIGHT)
    gallery.save_label_issue_gallery(out, prepared, correction, suggested, class_name="bird")
    png_size(out)


def test_gallery_without_truth_names_source_rows():
    prepared = make_prepared(truth=False)
    correction = make_correction(prepared)
    suggested = gallery.suggested_labels(prepared.labels, correction, None)
    rows = gallery.issue_order(correction, prepared.labels)[:3]
    tiles = gallery.issue_tiles(prepared, correction, suggested, rows)
    assert tiles[0].lines[-1] == f"row {int(prepared.train.index[rows[0]])}"
    assert tiles[0].edge is None and not any(line.startswith("true") for line in tiles[0].lines)


def test_tile_grid_grey_rgb_pairs_and_empty(tmp_path):
    grey = np.zeros((8, 8, 1), dtype=np.uint8)
    rgb = np.full((32, 32, 3), 200, dtype=np.uint8)
    save_tile_grid(
        tmp_path / "a.png",
        [Tile(grey, ("a", "b")), Tile(rgb, ("c",), "#f00")],
        title="t",
        legend="l" * 500,
    )
    assert side_by_side(rgb, rgb).shape == (32, 65, 3)
    save_tile_grid(
        tmp_path / "b.png", [Tile(side_by_side(grey, grey), ("p",))], title="pairs", aspect=2.0
    )
    save_tile_grid(tmp_path / "c.png", [], title="none")
    for name in "abc":
        png_size(tmp_path / f"{name}.png")
    assert shorten("a_very_long_file_name_indeed.jpg", 16).endswith(".jpg")
    assert len(shorten("x" * 40, 16)) == 16


# ----------------------------------------------------------------------------- curves


def test_curves_put_all_phases_on_one_axis_with_fixed_columns(tmp_path):
    rows = curves.combine(histories(), METRICS)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6, 7, 8, 8]
    assert [r["phase"] for r in rows] == ["warmup"] * 3 + ["train"] * 4 + ["correct", "final"]
    final = rows[-1]
    assert final["test_accuracy_net1"] == METRICS["test_accuracy_net1"] and final["loss_net1"] == ""
    assert rows[0]["test_accuracy"] == "" and rows[3]["test_accuracy"] == 0.5
    path = tmp_path / "curves.csv"
    curves.save_curves_csv(path, rows)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == curves.COLUMNS
        assert len(list(reader)) == 9
    assert curves.read_history_csv(path)[0]["loss_net1"] == 2.0
    assert curves.read_history_csv(tmp_path / "missing.csv") == []
    curves.save_curves_figure(tmp_path / "curves.png", rows, true_noise_rate=0.2)
    curves.save_curves_figure(tmp_path / "empty.png", curves.combine({}, None))
    assert png_size(tmp_path / "curves.png")[0] == 1000
    png_size(tmp_path / "empty.png")


# ----------------------------------------------------------------------------- transition


def test_transition_estimate_and_its_description(tmp_path):
    suggested = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    given = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    t = transition.estimate(suggested, given, 3)
    assert np.allclose(t.sum(1), 1)
    assert t[0, 1] == pytest.approx(0.25) and t[1, 2] == pytest.approx(0.25)
    assert "pairwise" in transition.describe(t)
    sym = np.full((4, 4), 0.1) + np.eye(4) * 0.6
    assert "symmetric" in transition.describe(sym)
    transition.save_transition_figure(tmp_path / "t.png", t, CLASSES, t)
    transition.save_transition_figure(tmp_path / "u.png", t, CLASSES)
    assert png_size(tmp_path / "t.png")[0] > png_size(tmp_path / "u.png")[0]


# ----------------------------------------------------------------------------- data issues


def test_near_duplicates_with_different_labels_found_once():
    prepared = make_prepared()
    labels = prepared.labels
    a = 0
    b = int(np.flatnonzero(labels != labels[a])[0])
    same = int(np.flatnonzero(labels == labels[a])[1])
    view = view_for(prepared, duplicate=(a, b))
    feats = view.features.copy()
    feats[same] = feats[5]  # a duplicate with the same label is not an issue
    labels_same = labels.copy()
    labels_same[same] = labels[5]
    found = data_issues.near_duplicates(feats, labels_same)
    pairs = {(e.row, e.partner) for e in found}
    assert (min(a, b), max(a, b)) in pairs
    assert (min(5, same), max(5, same)) not in pairs
    assert len(pairs) == len(found)
    top = found[0]
    assert top.kind == "near_duplicate" and top.distance <= top.threshold
    assert data_issues.near_duplicates(feats[:1], labels[:1]) == []


def test_outliers_are_far_from_every_prototype(tmp_path):
    prepared = make_prepared(paths=True)
    view = view_for(prepared)
    feats = view.features.copy()
    rng = np.random.default_rng(5)
    odd = 7
    feats[odd] = unit(rng.normal(size=(1, 16)))[0]  # nowhere near any class centre
    found = data_issues.outliers(feats, prepared.train.true_labels, K)
    assert found and found[0].row == odd and found[0].distance > found[0].threshold
    assert 0 <= found[0].nearest_class < K
    protos = data_issues.prototypes(feats, prepared.train.true_labels, K)
    assert np.allclose(np.linalg.norm(protos, axis=1), 1)
    dups = data_issues.near_duplicates(feats, prepared.labels)
    out = tmp_path / "issues.csv"
    data_issues.save_data_issues_csv(out, dups + found, prepared)
    with open(out, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == data_issues.COLUMNS
        rows = list(reader)
    outlier = [r for r in rows if r["kind"] == "outlier"][0]
    assert outlier["index"] == str(prepared.train.index[odd])
    assert outlier["path"] == prepared.train.paths[odd] and outlier["partner_index"] == ""
    data_issues.save_outliers_figure(tmp_path / "o.png", found, prepared)
    data_issues.save_pairs_figure(tmp_path / "p.png", [], prepared)
    png_size(tmp_path / "o.png")
    png_size(tmp_path / "p.png")


# ----------------------------------------------------------------------------- the page


def build(tmp_path: Path, *, paths=True, truth=True, mlflow=None, view=True, channels=1):
    prepared = make_prepared(paths=paths, truth=truth, channels=channels)
    correction = make_correction(prepared)
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = report_paths(tmp_path)
    confusion = tmp_path / "confusion.png"
    save_tile_grid(confusion, [], title="stand-in confusion matrix")
    params = {"method.networks": 2, "method.selection": "gmm", "model.arch": "cnn", "seed": 0}
    division = make_division(prepared) if truth else None
    inputs = ReportInputs(
        prepared=prepared,
        correction=correction,
        metrics={
            k: v
            for k, v in METRICS.items()
            if truth or not k.startswith(("detection", "correction", "given"))
        },
        per_class=np.array([1.0, 0.75, np.nan]),
        view=view_for(prepared, duplicate=(0, 40)) if view else None,
        params=params,
        divisions={"warmup": division, "train": division},
        histories=histories(),
        mlflow=mlflow,
        files={"report": "outputs/report.html", "metrics": "metrics.json"},
        confusion_png=confusion,
    )
    summary = write_report(inputs, out)
    return out, summary, prepared


LINKS = mlflow_links(
    run_id="r" * 32,
    parent_id="p" * 32,
    tracking_uri="http://mlflow:5000",
    experiment_name="noisyflow",
    experiment_id="7",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One report of user data (file paths) with known truth and an MLflow run."""
    return build(tmp_path_factory.mktemp("report"), mlflow=LINKS)


def test_report_page_is_self_contained_with_every_section_and_number(built):
    out, summary, prepared = built
    links = LINKS
    for f in ReportPaths.__dataclass_fields__:
        assert getattr(out, f).is_file(), f
        if getattr(out, f).suffix == ".png":
            png_size(getattr(out, f))
    text = out.report.read_text(encoding="utf-8")
    page = parse(text)
    assert {key for key, _ in SECTIONS} <= page.ids
    assert "metrics-table" in page.ids
    assert "script" not in page.tags and "link" not in page.tags
    assert len(page.imgs) >= 6 and all(s.startswith("data:image/png;base64,") for s in page.imgs)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text.replace(links["url"], ""))
    for key, value in METRICS.items():  # the metrics table as metrics.json has it
        shown = str(int(value)) if key.startswith("num_") else f"{value:.6f}"
        assert key in page.cells and shown in page.cells, key
    flagged = make_correction(prepared).is_label_issue
    assert summary.flagged == flagged.sum() == len(summary.gallery_rows)  # fewer than TOP_K
    assert links["url"] == "http://mlflow:5000/#/experiments/7/runs/" + "p" * 32
    assert links["url"] in page.hrefs
    assert page.meta["noisyflow:mlflow-run-id"] == "r" * 32
    first = prepared.train.paths[gallery.issue_order(make_correction(prepared), prepared.labels)[0]]
    assert first in page.cells  # the top label issue's file, in the table
    assert summary.near_duplicates >= 1 and "near_duplicate" in out.data_issues.read_text()
    assert "Near-duplicates with different labels (" in text
    assert len(text.encode()) < 2_000_000


def test_report_without_truth_mlflow_or_features_says_so(tmp_path):
    out, summary, _ = build(tmp_path, paths=False, truth=False, view=False, channels=3)
    text = html.unescape(out.report.read_text(encoding="utf-8"))
    page = parse(text)
    assert "No MLflow run" in text and "need the final networks' features" in text
    assert "No true labels are known" in text and "Caution" not in text
    assert "file" not in page.cells  # array data: no file column
    assert summary.near_duplicates == 0 and summary.outliers == 0
    with open(out.gmm_train, newline="") as fh:
        assert next(csv.DictReader(fh))["loss_all_net1"] == ""


def test_summary_cautions_when_the_networks_learned_little():
    from noisyflow.report.page import ReportData, cautions

    meta = {"classes": list("abcdefghij")}
    weak = ReportData(
        {"test_accuracy": 0.15, "estimated_noise_rate": 0.7}, meta, {}, {}, [], 0, [], 0, 0, []
    )
    notes = cautions(weak)
    assert len(notes) == 2 and "close to chance (10.0% for 10 classes)" in notes[0]
    fine = ReportData(
        {"test_accuracy": 0.9, "estimated_noise_rate": 0.4}, meta, {}, {}, [], 0, [], 0, 0, []
    )
    assert cautions(fine) == []


def test_mlflow_links_for_a_local_store():
    links = mlflow_links(
        run_id="r1",
        parent_id="p1",
        tracking_uri="sqlite:////x/mlflow.db",
        experiment_name="e",
        experiment_id="3",
    )
    assert (
        "url" not in links
        and "mlflow ui --backend-store-uri sqlite:////x/mlflow.db" in (links["ui_hint"])
    )
    assert "#/experiments/3/runs/p1" in links["ui_hint"]
    assert (
        "experiment e"
        in mlflow_links(
            run_id="r1",
            parent_id=None,
            tracking_uri="sqlite:///a",
            experiment_name="e",
            experiment_id=None,
        )["ui_hint"]
    )
    assert (
        mlflow_links(
            run_id=None, parent_id=None, tracking_uri="", experiment_name="e", experiment_id=None
        )
        is None
    )


def test_find_report_and_the_prefect_markdown_link_it(tmp_path, built):
    assert find_report(tmp_path) is None
    out = built[0]
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs/report.html").write_bytes(out.report.read_bytes())
    found = find_report(tmp_path)
    assert found["path"] == str((tmp_path / "outputs/report.html").resolve())
    assert found["uri"].startswith("file://") and found["run_id"] == "r" * 32
    assert found["artifact"] == f"runs:/{'r' * 32}/report/report.html"
    assert found["parent_run_id"] == "p" * 32 and found["created"]
    assert found["url"] == LINKS["url"]
    text = run_report(metrics=METRICS, label_issues=3, parent=None, flow_run_id="f", report=found)
    assert f"run report (HTML): [{found['path']}]({found['uri']})" in text
    assert found["artifact"] in text
    assert "run report" not in run_report(
        metrics={}, label_issues=None, parent=None, flow_run_id="f"
    )


def test_report_command_prints_or_explains(tmp_path, built, capsys):
    from pipeline.cli import build_parser, main

    assert main(["report", "--project-dir", str(tmp_path)]) == 1
    assert "no report in" in capsys.readouterr().err
    out = built[0]
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs/report.html").write_bytes(out.report.read_bytes())
    assert main(["report", "--project-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].endswith("outputs/report.html") and LINKS["url"] in printed[-1]
    args = build_parser().parse_args(["report", "--class", "cat", "--top", "5", "--open"])
    assert (args.class_name, args.top, args.open) == ("cat", 5, True)
    assert build_parser().parse_args(["compare", "--html", "c.html"]).html == "c.html"


def test_compare_page_puts_runs_side_by_side():
    runs = [
        {
            "run_id": f"id{i}",
            "name": f"run-{i}",
            "params": {"train.epochs": str(e), "seed": "0"},
            "metrics": {"test_accuracy": acc, "num_label_issues": 10.0},
        }
        for i, (e, acc) in enumerate([(30, 0.9), (10, 0.8)])
    ]
    overview = [{"run": r["name"], "status": "FINISHED"} for r in runs]
    hist = [{"test_accuracy": [(0, 0.5), (1, 0.9)]}, {}]
    text = render_compare(runs, overview, hist)
    page = parse(text)
    assert "metrics-table" in page.ids and "script" not in page.tags
    assert "train.epochs" in page.cells and "seed" not in page.cells  # only what differs
    assert "0.9000" in page.cells and "run-1" in page.cells
    assert "<b>0.9000</b>" in text  # the best score in bold
    assert len(page.imgs) == 1 and page.imgs[0].startswith("data:image/png;base64,")


# ----------------------------------------------------------------------------- wiring


def test_evaluate_declares_its_report_in_dvc_yaml():
    from stages import evaluate

    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stage = dvc["stages"]["evaluate"]
    assert tuple(stage["params"]) == evaluate.READS
    outs = {next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]}
    for key in evaluate.REPORT_KEYS:
        assert evaluate.PATHS[key] in outs, key
    for key in (
        "warmup_division",
        "train_division",
        "warmup_history",
        "train_history",
        "correct_history",
        "model",
        "issues",
        "prepared",
    ):
        assert evaluate.PATHS[key] in stage["deps"], key
    columns = {
        "plots/curves.csv": set(curves.COLUMNS),
        "plots/gmm_warmup.csv": set(gmm.histogram_rows(None, None, None)[0]),
        "plots/gmm_train.csv": set(gmm.histogram_rows(None, None, None)[0]),
        "plots/confusion.csv": {"actual", "predicted"},
    }
    for plot in dvc["plots"]:
        if isinstance(plot, str):  # an image
            assert plot in outs
            continue
        (spec,) = plot.values()
        for path, fields in spec["y"].items():
            fields = [fields] if isinstance(fields, str) else fields
            assert set(fields) | {spec["x"]} <= columns[path], (path, fields)


def test_metrics_json_round_trip_matches_the_page(tmp_path):
    """The page shows metrics.json's values: numbers written by metrics_payload, unchanged."""
    from noisyflow.artifacts import metrics_payload

    payload = metrics_payload({"test_accuracy": 0.98765432, "num_corrected": 16.0})
    (tmp_path / "metrics.json").write_text(json.dumps(payload))
    from noisyflow.report.page import metrics_table

    cells = parse(metrics_table(json.loads((tmp_path / "metrics.json").read_text()))).cells
    assert "0.987654" in cells and "16" in cells and "16.000000" not in cells
