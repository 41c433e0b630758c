"""Each stage alone on tiny inputs: given its input files it writes its outputs with the
documented schema and sensible values. The stages run in order on one tiny data set."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from noisyflow.artifacts import LABEL_ISSUE_COLUMNS, load_prepared
from noisyflow.io import load_checkpoint, load_npz
from stages import codivide, correct, evaluate, prepare, train, warmup
from tests.helpers import write_params


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    # warm-up long enough that the networks separate clean from noisy labels
    write_params(root / "params.yaml", {"warmup.epochs": 4, "model.width": 8})
    return root


@pytest.fixture(autouse=True)
def _tracking(tracking_env):
    return tracking_env


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def args(work, **paths):
    out = ["--params", str(work / "params.yaml")]
    for name, rel in paths.items():
        out += [f"--{name.replace('_', '-')}", str(work / rel)]
    return out


def test_prepare_writes_arrays_and_meta(work):
    prepare.main(args(work, out="prepared"))
    p = load_prepared(work / "prepared")
    assert p.x_train.shape == (1597, 8, 8, 1) and p.x_test.shape == (200, 8, 8, 1)
    assert p.noise_mask.mean() == pytest.approx(0.4, abs=1e-3)
    assert np.array_equal(p.noise_mask, p.labels != p.true_labels)
    meta = json.loads((work / "prepared" / "meta.json").read_text())
    assert meta["realised_noise_rate"] == pytest.approx(0.4, abs=1e-3)
    assert np.allclose(np.array(meta["transition_matrix"]).sum(1), 1.0, atol=1e-3)
    assert sum(meta["train_class_counts"]) == 1597


def test_warmup_writes_two_networks(work):
    warmup.main(
        args(work, prepared="prepared", model="warmup.pt", metrics="warmup.json", plot="warmup.csv")
    )
    ck = load_checkpoint(work / "warmup.pt")
    assert len(ck["nets"]) == 2 and ck["model_config"]["arch"] == "cnn"
    assert len(ck["history"]) == 4
    assert "loss_net1" in json.loads((work / "warmup.json").read_text())


def test_codivide_separates_noisy_labels(work):
    codivide.main(
        args(
            work,
            prepared="prepared",
            model="warmup.pt",
            out="division.npz",
            metrics="codivide.json",
            plot="hist.png",
        )
    )
    div = load_npz(work / "division.npz")
    assert div["clean_prob"].shape == (2, 1597)
    assert ((div["clean_prob"] >= 0) & (div["clean_prob"] <= 1)).all()
    m = json.loads((work / "codivide.json").read_text())
    assert m["detection_auroc"] > 0.8
    assert 0.2 < m["estimated_noise_rate"] < 0.6
    assert (work / "hist.png").stat().st_size > 1000


def test_train_writes_checkpoint_division_and_curves(work):
    train.main(
        args(
            work,
            prepared="prepared",
            warmup_model="warmup.pt",
            division="division.npz",
            model="train.pt",
            out="train_div.npz",
            metrics="train.json",
            plot="train.csv",
            curves="curves.png",
        )
    )
    assert len(load_checkpoint(work / "train.pt")["nets"]) == 2
    rows = read_csv(work / "train.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert 0 <= float(rows[-1]["test_accuracy"]) <= 1
    assert load_npz(work / "train_div.npz")["clean_prob"].shape == (2, 1597)


def test_correct_writes_cleanlab_style_table(work):
    correct.main(
        args(
            work,
            prepared="prepared",
            model="train.pt",
            division="train_div.npz",
            out="label_issues.csv",
            metrics="correct.json",
        )
    )
    rows = read_csv(work / "label_issues.csv")
    assert tuple(rows[0]) == LABEL_ISSUE_COLUMNS and len(rows) == 1597
    assert [int(r["index"]) for r in rows] == list(range(1597))
    q = np.array([float(r["label_quality"]) for r in rows])
    assert ((q >= 0) & (q <= 1)).all()
    flagged = np.array([r["is_label_issue"] == "True" for r in rows])
    changed = np.array([r["given_label"] != r["corrected_label"] for r in rows])
    assert np.array_equal(flagged, changed) and 0.1 < flagged.mean() < 0.7


def test_evaluate_writes_contract_metrics(work):
    evaluate.main(
        args(
            work,
            prepared="prepared",
            model="train.pt",
            issues="label_issues.csv",
            metrics="metrics.json",
            confusion="confusion.csv",
            confusion_png="confusion.png",
            per_class="per_class.csv",
        )
    )
    m = json.loads((work / "metrics.json").read_text())
    for key in (
        "test_accuracy",
        "detection_f1",
        "detection_auroc",
        "correction_accuracy",
        "estimated_noise_rate",
    ):
        assert 0 <= m[key] <= 1, key
    assert m["test_accuracy"] > 0.3 and m["detection_auroc"] > 0.6
    rows = read_csv(work / "confusion.csv")
    assert len(rows) == 200 and set(rows[0]) == {"actual", "predicted"}
