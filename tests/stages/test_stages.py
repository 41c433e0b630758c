"""Each stage in-process on tiny data, in pipeline order, at the dvc.yaml paths (the stage
modules' PATHS defaults under a temporary project). Every output is checked against what it must
be, recomputed in the test: schemas and shapes, rows mapping back to the source, each network's
row of a division coming from that network, checkpoints that rebuild the logged predictions, and
metrics that agree with the tables they summarise. Wrong wiring changes a number here."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from noisyflow import recipes
from noisyflow.artifacts import LABEL_ISSUE_COLUMNS, load_division, load_label_issues
from noisyflow.config import load_params
from noisyflow.data.prepare import load_prepared
from noisyflow.io import load_checkpoint
from noisyflow.methods.selection.gmm import fit_clean_probability
from noisyflow.models import ModelConfig
from noisyflow.train.data import TrainData, channel_stats
from noisyflow.train.engine import infer
from noisyflow.train.runtime import Runtime
from stages import codivide, correct, evaluate, prepare, sources, train, warmup
from tests.helpers import write_params

N_TRAIN, N_TEST, K = 1597, 200, 10
WARMUP_EPOCHS, TRAIN_EPOCHS = 2, 2
CPU = Runtime.cpu()
DIGITS = load_digits()
DIGIT_IMAGES = np.rint(DIGITS.images * (255.0 / 16.0)).astype(np.uint8)[..., None]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    write_params(
        root / "params.yaml",
        {
            "warmup.epochs": WARMUP_EPOCHS,
            "train.epochs": TRAIN_EPOCHS,
            "model.width": 8,
            "tracking.experiment": "stage-tests",
        },
    )
    return root


@pytest.fixture(autouse=True)
def _project(work, tracking_env, monkeypatch):
    """The temporary project is the cwd (resume state, decode cache, MLflow artifacts)."""
    monkeypatch.chdir(work)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    return tracking_env


def args(work, module, **paths):
    """--params plus every PATHS option at its dvc.yaml default under `work`."""
    out = ["--params", str(work / "params.yaml")]
    for name, rel in {**module.PATHS, **paths}.items():
        out += [f"--{name.replace('_', '-')}", str(work / rel)]
    return out


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def read_json(path):
    return json.loads(path.read_text())


def params(work):
    return load_params(work / "params.yaml")


def prepared_data(work):
    return load_prepared(work / "data/prepared")


def nets_of(work, rel):
    payload = load_checkpoint(work / rel)
    config, nets = recipes.load_nets(payload, CPU, origin=rel, expect=params(work))
    return payload, config, nets


def per_sample_ce(nets, data):
    """(M, N) cross-entropy of the given labels, each network in eval mode."""
    out = []
    for net in nets:
        logits, _ = infer(net, data, runtime=CPU)
        out.append(F.cross_entropy(logits, data.labels, reduction="none").numpy())
    return np.stack(out).astype(np.float64)


def check_history_csv(path, history):
    rows = read_csv(path)
    assert [int(r["epoch"]) for r in rows] == [int(h["epoch"]) for h in history]
    keys = sorted({k for h in history for k in h} - {"epoch"})
    assert list(rows[0]) == ["epoch", *keys]
    for row, h in zip(rows, history, strict=True):
        for key in keys:
            assert float(row[key]) == pytest.approx(h[key], rel=1e-12), key
    return rows


def check_division_of(nets, division, data, p):
    """Row k of a division comes from network k: its losses and its GMM fit."""
    losses = per_sample_ce(nets, data)
    assert division.loss.shape == division.clean_prob.shape == (len(nets), N_TRAIN)
    for k in range(len(nets)):
        np.testing.assert_allclose(division.loss[k], losses[k], rtol=1e-6, atol=1e-7)
        expected, fit = fit_clean_probability(division.loss[k], p.selection.gmm)
        np.testing.assert_allclose(division.clean_prob[k], expected, rtol=1e-9, atol=1e-12)
        assert division.fits[k]["low"] == pytest.approx(fit["low"])
        assert division.fits[k]["means"] == pytest.approx(fit["means"])
    assert not np.allclose(division.loss[0], division.loss[1])  # two different networks
    assert np.array_equal(division.labelled, division.clean_prob > p.selection.gmm.p_threshold)
    assert np.array_equal(division.weight, np.ones_like(division.clean_prob))


def detection(flagged, noisy):
    tp = (flagged & noisy).sum()
    precision, recall = tp / flagged.sum(), tp / noisy.sum()
    return precision, recall, 2 * precision * recall / (precision + recall)


# ----------------------------------------------------------------------------- sources / prepare


def test_sources_fingerprints_the_digits_source(work):
    sources.main(args(work, sources))
    listing = read_json(work / "data/sources.json")
    assert listing["source"] == "digits" and listing["files"] == []
    assert "sklearn" in listing


def test_prepare_splits_the_source_rows_and_injects_the_noise(work):
    prepare.main(args(work, prepare))
    p = prepared_data(work)
    train_split, test_split = p.train, p.test
    assert p.x_train.shape == (N_TRAIN, 8, 8, 1) and p.x_test.shape == (N_TEST, 8, 8, 1)
    assert p.x_train.dtype == np.uint8 and p.classes == tuple(str(c) for c in range(K))
    # every source row is in exactly one split, rows sorted by source row
    rows = np.concatenate([train_split.index, test_split.index])
    assert sorted(rows.tolist()) == list(range(N_TRAIN + N_TEST))
    for split in (train_split, test_split):
        assert np.all(np.diff(split.index) > 0)
        assert np.array_equal(split.x, DIGIT_IMAGES[split.index])  # the source row's image
    assert np.array_equal(p.true_labels, DIGITS.target[train_split.index])
    assert np.array_equal(p.y_test, DIGITS.target[test_split.index])  # test labels stay clean
    # stratified test split
    expected = np.bincount(DIGITS.target, minlength=K) * N_TEST / len(DIGITS.target)
    assert np.abs(np.bincount(p.y_test, minlength=K) - expected).max() <= 1
    # symmetric noise at 0.4, never the true class (include_true_class: false)
    noisy = p.labels != p.true_labels
    assert np.array_equal(p.noise_mask, noisy)
    assert noisy.mean() == pytest.approx(0.4, abs=1e-3)
    meta = p.meta
    assert meta["counts"] == {"train": N_TRAIN, "test": N_TEST}
    assert meta["class_counts"]["train"] == np.bincount(p.labels, minlength=K).tolist()
    assert meta["noise"]["realised_rate"] == pytest.approx(noisy.mean(), abs=1e-6)
    counts = np.zeros((K, K))
    np.add.at(counts, (p.true_labels, p.labels), 1)
    transition = counts / counts.sum(1, keepdims=True)
    assert np.allclose(meta["noise"]["transition_matrix"], transition, atol=1e-4)
    assert np.allclose(np.diag(transition), 0.6, atol=0.08)


# ----------------------------------------------------------------------------- warmup


def test_warmup_writes_two_seeded_networks_and_their_history(work):
    warmup.main(args(work, warmup))
    p = prepared_data(work)
    payload, config, nets = nets_of(work, "models/warmup.pt")
    mean, std = channel_stats(p.x_train)
    assert ModelConfig(**payload["model_config"]) == ModelConfig(
        "cnn", 1, K, 8, tuple(mean), tuple(std)
    )
    assert config.num_classes == K and len(payload["nets"]) == 2
    assert payload["classes"] == list(p.classes)
    a, b = payload["nets"]
    assert any(not torch.equal(a[key], b[key]) for key in a)  # seeds seed and seed + 1
    history = payload["history"]
    assert [h["epoch"] for h in history] == list(range(WARMUP_EPOCHS))
    assert {"loss_net1", "loss_net2"} <= set(history[-1])
    check_history_csv(work / "plots/warmup.csv", history)
    last = {k: v for k, v in history[-1].items() if k != "epoch"}
    assert read_json(work / "metrics/warmup.json") == pytest.approx(last)
    assert not (work / ".noisyflow/state/warmup.pt").exists()  # resume state cleared


# ----------------------------------------------------------------------------- codivide


def test_codivide_divides_by_each_networks_own_losses(work):
    codivide.main(args(work, codivide))
    p = prepared_data(work)
    data = TrainData(p.x_train, p.labels, CPU)
    _, _, nets = nets_of(work, "models/warmup.pt")
    division = load_division(work / "outputs/codivide/division.npz", N_TRAIN)
    check_division_of(nets, division, data, params(work))

    m = read_json(work / "metrics/codivide.json")
    noisy_est = ~division.labelled.any(axis=0)
    assert m["estimated_noise_rate"] == pytest.approx(noisy_est.mean())
    for k in range(2):
        assert m[f"labelled_frac_net{k + 1}"] == pytest.approx(division.labelled[k].mean())
    precision, recall, f1 = detection(noisy_est, p.noise_mask)
    assert m["detection_precision"] == pytest.approx(precision)
    assert m["detection_recall"] == pytest.approx(recall)
    assert m["detection_f1"] == pytest.approx(f1)
    auroc = roc_auc_score(p.noise_mask, 1 - division.clean_prob.mean(axis=0))
    assert m["detection_auroc"] == pytest.approx(auroc)
    assert (work / "plots/codivide_gmm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- train


def test_train_checkpoint_rebuilds_the_logged_accuracy_and_division(work):
    train.main(args(work, train))
    p = prepared_data(work)
    payload, config, nets = nets_of(work, "models/train.pt")
    warm = load_checkpoint(work / "models/warmup.pt")
    assert payload["model_config"] == warm["model_config"] and len(nets) == 2
    assert any(
        not torch.equal(payload["nets"][0][key], warm["nets"][0][key]) for key in warm["nets"][0]
    )  # trained further, not the warm-up weights re-saved

    history = payload["history"]
    assert [h["epoch"] for h in history] == list(range(TRAIN_EPOCHS))
    rows = check_history_csv(work / "plots/train.csv", history)
    # the columns dvc.yaml plots
    assert {"test_accuracy", "detection_f1", "estimated_noise_rate"} <= set(rows[0])
    assert {"loss_net1", "loss_net2", "labelled_frac_net1", "labelled_frac_net2"} <= set(rows[0])
    last = {k: v for k, v in history[-1].items() if k != "epoch"}
    assert read_json(work / "metrics/train.json") == pytest.approx(last)

    test = TrainData(p.x_test, p.y_test, CPU)
    logits = sum(infer(net, test, runtime=CPU)[0] for net in nets)
    accuracy = float((logits.argmax(1) == test.labels).float().mean())
    assert history[-1]["test_accuracy"] == pytest.approx(accuracy, abs=1e-7)

    # the output division is the final networks' re-division (DivideMix re-divides each epoch)
    division = load_division(work / "outputs/train/division.npz", N_TRAIN)
    check_division_of(nets, division, TrainData(p.x_train, p.labels, CPU), params(work))
    assert (work / "plots/train_curves.png").read_bytes()[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------- correct


def read_issues(work):
    rows = read_csv(work / "outputs/label_issues.csv")
    col = {c: [r[c] for r in rows] for c in LABEL_ISSUE_COLUMNS}
    return rows, {
        "index": np.array(col["index"], dtype=np.int64),
        "given": np.array(col["given_label"], dtype=np.int64),
        "corrected": np.array(col["corrected_label"], dtype=np.int64),
        "quality": np.array(col["label_quality"], dtype=np.float64),
        "flagged": np.array([v == "True" for v in col["is_label_issue"]]),
        "proto": np.array(col["prototype_label"], dtype=np.int64),
        "given_class": col["given_class"],
        "corrected_class": col["corrected_class"],
        "path": col["path"],
    }


def test_correct_writes_a_label_issue_table_pointing_at_the_source_rows(work):
    correct.main(args(work, correct))
    p = prepared_data(work)
    rows, t = read_issues(work)
    assert tuple(rows[0]) == LABEL_ISSUE_COLUMNS and len(rows) == N_TRAIN
    assert {r["is_label_issue"] for r in rows} <= {"True", "False"}
    # rows are the training samples by source row, with the label they were given there
    assert np.array_equal(t["index"], np.sort(p.train.index))
    position = {int(s): i for i, s in enumerate(p.train.index)}
    at = np.array([position[i] for i in t["index"]])
    assert np.array_equal(t["given"], p.labels[at])
    assert np.array_equal(t["given"] != DIGITS.target[t["index"]], p.noise_mask[at])
    assert t["path"] == [""] * N_TRAIN  # an array source has no files
    assert t["given_class"] == [p.classes[g] for g in t["given"]]
    assert t["corrected_class"] == [p.classes[c] for c in t["corrected"]]
    assert ((t["corrected"] >= 0) & (t["corrected"] < K)).all()
    assert ((t["proto"] >= 0) & (t["proto"] < K)).all()  # the prototype correction votes

    # the decision's invariants: a changed label is flagged; a flagged one has quality < 1/2
    # (another class outweighs the given one); an unflagged one has the largest q, >= 1/K
    changed = t["corrected"] != t["given"]
    flagged = t["flagged"]
    assert not (changed & ~flagged).any()
    assert (t["quality"][flagged] <= 0.5).all()
    assert (t["quality"][~flagged] >= 1 / K - 1e-6).all()
    assert changed.any() and (flagged & ~changed).any()  # both outcomes occur here

    # require_agreement: a changed label is every final network's and the prototypes' choice
    _, _, nets = nets_of(work, "models/final.pt")
    data = TrainData(p.x_train, p.labels, CPU)
    for net in nets:
        pred = infer(net, data, runtime=CPU)[0].argmax(1).numpy()[at]
        assert np.array_equal(pred[changed], t["corrected"][changed])
    assert np.array_equal(t["proto"][changed], t["corrected"][changed])

    m = read_json(work / "metrics/correct.json")
    assert m == {
        "num_label_issues": int(flagged.sum()),
        "label_issue_fraction": pytest.approx(flagged.mean()),
        "num_corrected": int(changed.sum()),
    }
    # the evaluate stage reads the table back by `index` into training order
    back = load_label_issues(work / "outputs/label_issues.csv", p)
    order = np.argsort(at)
    assert np.array_equal(back.corrected_label, t["corrected"][order])
    assert np.array_equal(back.is_label_issue, flagged[order])
    assert np.allclose(back.label_quality, t["quality"][order])


def test_correct_self_learning_trains_the_final_networks(work):
    final, _, _ = nets_of(work, "models/final.pt")
    trained = load_checkpoint(work / "models/train.pt")
    assert final["model_config"] == trained["model_config"]
    assert any(
        not torch.equal(final["nets"][1][key], trained["nets"][1][key])
        for key in trained["nets"][1]
    )
    p = params(work).correction.prototype
    history = final["history"]
    assert [h["epoch"] for h in history] == list(range(p.rounds * p.epochs))
    rows = check_history_csv(work / "plots/correct.csv", history)
    assert {"pseudo_changed_net1", "pseudo_changed_net2"} <= set(rows[0])


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_metrics_agree_with_the_tables_and_the_noise_mask(work):
    evaluate.main(args(work, evaluate))
    p = prepared_data(work)
    m = read_json(work / "metrics.json")
    assert set(m) == {
        "test_accuracy",
        "test_accuracy_net1",
        "test_accuracy_net2",
        "truth_known_fraction",
        "estimated_noise_rate",
        "num_label_issues",
        "num_corrected",
        "detection_precision",
        "detection_recall",
        "detection_f1",
        "detection_auroc",
        "correction_accuracy",
        "given_label_accuracy",
    }
    # detection and correction, recomputed from label_issues.csv and the prepared noise mask
    _, t = read_issues(work)
    position = {int(s): i for i, s in enumerate(p.train.index)}
    at = np.array([position[i] for i in t["index"]])
    noisy, truth = p.noise_mask[at], p.true_labels[at]
    precision, recall, f1 = detection(t["flagged"], noisy)
    assert m["detection_precision"] == pytest.approx(precision, abs=1e-6)
    assert m["detection_recall"] == pytest.approx(recall, abs=1e-6)
    assert m["detection_f1"] == pytest.approx(f1, abs=1e-6)
    assert m["detection_auroc"] == pytest.approx(roc_auc_score(noisy, 1 - t["quality"]), abs=1e-6)
    assert m["correction_accuracy"] == pytest.approx((t["corrected"] == truth).mean(), abs=1e-6)
    assert m["given_label_accuracy"] == pytest.approx(1 - noisy.mean(), abs=1e-6)
    assert m["estimated_noise_rate"] == pytest.approx(t["flagged"].mean(), abs=1e-6)
    c = read_json(work / "metrics/correct.json")
    assert (m["num_label_issues"], m["num_corrected"]) == (
        c["num_label_issues"],
        c["num_corrected"],
    )
    assert m["truth_known_fraction"] == 1.0

    # test predictions: the final checkpoint rebuilds them, the confusion table holds them
    _, _, nets = nets_of(work, "models/final.pt")
    test = TrainData(p.x_test, p.y_test, CPU)
    logits = [infer(net, test, runtime=CPU)[0] for net in nets]
    pred = torch.stack(logits).sum(0).argmax(1).numpy()
    rows = read_csv(work / "plots/confusion.csv")
    assert list(rows[0]) == ["actual", "predicted"] and len(rows) == N_TEST
    assert [int(r["actual"]) for r in rows] == p.y_test.tolist()
    assert [int(r["predicted"]) for r in rows] == pred.tolist()
    assert m["test_accuracy"] == pytest.approx((pred == p.y_test).mean(), abs=1e-6)
    for k, lg in enumerate(logits, start=1):
        own = (lg.argmax(1).numpy() == p.y_test).mean()
        assert m[f"test_accuracy_net{k}"] == pytest.approx(own, abs=1e-6)

    per_class = read_csv(work / "outputs/per_class_accuracy.csv")
    assert [r["class"] for r in per_class] == list(p.classes)
    for c_idx, r in enumerate(per_class):
        mask = p.y_test == c_idx
        assert float(r["accuracy"]) == pytest.approx((pred[mask] == c_idx).mean())
    assert (work / "plots/confusion.png").read_bytes()[:4] == b"\x89PNG"
