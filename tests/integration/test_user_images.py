"""A user's image folder through the whole `dvc repro`: the first CIFAR-10 training images of
the shared pack written as PNG files in `root/<class>/`, 40% of them moved to a wrong class
folder (the user's mistakes), a tiny network; label_issues.csv points at files that exist, in
the folder the user gave, with their class names; `noisyflow export` and `noisyflow predict`
work on the result."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import CIFAR_PACK, dvc, make_dvc_project, subprocess_env

pytestmark = pytest.mark.integration

N = 400


def write_folder(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """PNG files under root/<given class>/; returns {relative path: true class} and given."""
    pack = np.load(CIFAR_PACK, allow_pickle=False)
    classes = [str(c) for c in pack["classes"]]
    offsets, blobs, labels = pack["train_offsets"], pack["train_jpeg"], pack["train_labels"]
    rng = np.random.default_rng(0)
    wrong = rng.random(N) < 0.4
    truth, given = {}, {}
    for i in range(N):
        true = int(labels[i])
        label = (true + rng.integers(1, 10)) % 10 if wrong[i] else true
        image = Image.open(io.BytesIO(blobs[offsets[i] : offsets[i + 1]].tobytes()))
        rel = f"{classes[label]}/img_{i:04d}.png"
        (root / classes[label]).mkdir(parents=True, exist_ok=True)
        image.convert("RGB").save(root / rel)
        truth[rel], given[rel] = classes[true], classes[label]
    return truth, given


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    if not CIFAR_PACK.is_file():
        pytest.skip(f"the CIFAR-10 pack is not at {CIFAR_PACK}")
    base = tmp_path_factory.mktemp("images")
    truth, given = write_folder(base / "photos")
    root = make_dvc_project(
        base / "proj",
        {
            "data.source": "imagefolder",
            "data.path": str(base / "photos"),
            "data.image_size": 32,
            "data.test_size": 100,
            "data.noise.type": "none",
            "augment.hflip": True,
            "model.width": 4,
        },
    )
    env = subprocess_env(MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}")
    dvc(root, "repro", env=env)
    return root, base / "photos", truth, given, env


def test_label_issues_point_at_the_users_files(project):
    root, photos, _, given = project[:4]
    with open(root / "outputs" / "label_issues.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == N - 100  # test rows never appear
    listing = sorted(str(p.relative_to(photos)) for p in photos.rglob("*.png"))
    for row in rows:
        assert (photos / row["path"]).is_file()
        assert listing[int(row["index"])] == row["path"]  # index = position in the listing
        assert row["given_class"] == given[row["path"]]
    meta = (root / "data" / "prepared" / "meta.json").read_text()
    assert '"truth": "none"' in meta  # the user's own labels: nothing is known to be true


def test_export_and_predict_on_the_users_folder(project, tmp_path):
    root, photos, _, _, env = project
    cli = [sys.executable, "-m", "pipeline.cli"]
    out = subprocess.run(
        [*cli, "export", "--out", str(tmp_path / "export")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    with open(tmp_path / "export" / "moves.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        moves = list(reader)
    assert {"path", "from_class", "to_class"} <= set(reader.fieldnames)
    assert all((photos / m["path"]).is_file() for m in moves)  # moves the user may apply
    assert sorted(p.name for p in photos.rglob("*.png")) == sorted(
        f"img_{i:04d}.png" for i in range(N)
    )  # export never moves or edits the user's files
    preds = subprocess.run(
        [*cli, "predict", "--folder", str(photos / "cat"), "--out", str(tmp_path / "p.csv")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert preds.returncode == 0, preds.stderr[-2000:]
    with open(tmp_path / "p.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(list((photos / "cat").glob("*.png")))
    classes = {p.name for p in photos.iterdir()}
    assert all(r["class"] in classes and 0 <= float(r["probability"]) <= 1 for r in rows)
