import numpy as np
import pytest
import torch

from noisyflow.errors import InputDataError
from noisyflow.io import atomic_outputs, load_checkpoint, load_npz, save_checkpoint


def test_atomic_outputs_replace_on_success(tmp_path):
    target = tmp_path / "out" / "result.txt"
    with atomic_outputs(target) as (tmp,):
        tmp.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    assert list((tmp_path / "out").iterdir()) == [target]


def test_atomic_outputs_leave_nothing_on_failure(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "dir"
    a.write_text("old")
    with pytest.raises(RuntimeError), atomic_outputs(a, b) as (ta, tb):
        ta.write_text("half")
        tb.mkdir()
        raise RuntimeError("boom")
    assert a.read_text() == "old" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_checkpoint_roundtrip_and_refuses_pickled_objects(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"w": torch.ones(2), "history": [{"epoch": 0, "loss": 1.0}]})
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(2))
    torch.save({"obj": object()}, tmp_path / "evil.pt")
    with pytest.raises(InputDataError, match="evil.pt: not a valid noisyflow checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def test_load_npz_refuses_object_arrays(tmp_path):
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputDataError, match="o.npz"):
        load_npz(tmp_path / "o.npz")["x"]
