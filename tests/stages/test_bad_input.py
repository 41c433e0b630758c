"""Bad input: a clear error naming the problem (exit code 2), and no output left behind."""

from __future__ import annotations

import numpy as np
import pytest

from stages import prepare, warmup
from tests.helpers import write_params


@pytest.fixture(autouse=True)
def _tracking(tracking_env):
    return tracking_env


def run_prepare(tmp_path, capsys, overrides):
    params = write_params(tmp_path / "params.yaml", overrides)
    out = tmp_path / "prepared"
    with pytest.raises(SystemExit) as exc:
        prepare.main(["--params", str(params), "--out", str(out)])
    assert exc.value.code == 2
    assert not out.exists()
    assert {p.suffix for p in tmp_path.iterdir()} <= {".yaml", ".npz"}  # no stray temp dirs
    return capsys.readouterr().err


def test_missing_data_file(tmp_path, capsys):
    err = run_prepare(
        tmp_path, capsys, {"data.source": "npz", "data.path": str(tmp_path / "gone.npz")}
    )
    assert "gone.npz: file not found" in err


def test_labels_outside_range(tmp_path, capsys):
    x = np.zeros((30, 4, 4, 1), np.uint8)
    y = np.arange(30) % 3
    y[17] = 5
    np.savez(tmp_path / "d.npz", x=x, y=y, classes=np.array(["a", "b", "c"]))
    err = run_prepare(
        tmp_path,
        capsys,
        {"data.source": "npz", "data.path": str(tmp_path / "d.npz"), "data.test_size": 6},
    )
    assert "d.npz: row 17 has label 5, expected 0..2" in err


def test_images_and_labels_of_different_lengths(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", x=np.zeros((30, 4, 4), np.uint8), y=np.arange(25) % 3)
    err = run_prepare(
        tmp_path, capsys, {"data.source": "npz", "data.path": str(tmp_path / "d.npz")}
    )
    assert "30 images but 25 labels" in err


def test_unknown_noise_type(tmp_path, capsys):
    err = run_prepare(tmp_path, capsys, {"data.noise.type": "gaussian"})
    assert "params.yaml: data.noise.type: unknown value 'gaussian'" in err
    assert "none, symmetric, asymmetric" in err


def test_downstream_stage_names_its_missing_input(tmp_path, capsys):
    params = write_params(tmp_path / "params.yaml")
    outs = {"model": tmp_path / "w.pt", "metrics": tmp_path / "w.json", "plot": tmp_path / "w.csv"}
    argv = ["--params", str(params), "--prepared", str(tmp_path / "nothing")]
    for name, path in outs.items():
        argv += [f"--{name}", str(path)]
    with pytest.raises(SystemExit):
        warmup.main(argv)
    assert "nothing: prepared data directory not found" in capsys.readouterr().err
    assert not any(p.exists() for p in outs.values())
