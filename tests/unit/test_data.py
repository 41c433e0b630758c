import numpy as np
import pytest
import torch

from noisyflow.data import augment_batch, load_source, stratified_split, to_tensor
from noisyflow.errors import InputDataError


def test_digits_source_is_real_uint8_nhwc():
    src = load_source("digits")
    assert src.images.shape == (1797, 8, 8, 1) and src.images.dtype == np.uint8
    assert src.images.max() == 255 and src.num_classes == 10


def test_npz_source_roundtrip(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (20, 6, 6), dtype=np.uint8)
    y = np.arange(20) % 4
    np.savez(tmp_path / "d.npz", x=x, y=y)
    src = load_source("npz", str(tmp_path / "d.npz"))
    assert src.images.shape == (20, 6, 6, 1) and src.classes == ("0", "1", "2", "3")


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"x": np.zeros((5, 4, 4), np.uint8), "y": np.array([0, 1, 0, 1, 7])},
            r"row 4 has label 7, expected 0..1",
        ),
        ({"x": np.zeros((5, 4, 4), np.uint8), "y": np.array([0, 1, 0])}, "5 images but 3 labels"),
        ({"x": np.zeros((5, 4, 4), np.float32), "y": np.array([0, 1, 0, 1, 0])}, "must be uint8"),
        ({"images": np.zeros((5, 4, 4), np.uint8)}, r"missing array\(s\) x, y"),
    ],
)
def test_bad_npz_inputs_name_the_problem(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    if "classes" not in arrays and "y" in arrays and arrays["y"].max() == 7:
        np.savez(path, classes=np.array(["a", "b"]), **arrays)
    with pytest.raises(InputDataError, match=message):
        load_source("npz", str(path))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputDataError, match="nope.npz: file not found"):
        load_source("npz", str(tmp_path / "nope.npz"))


def test_stratified_split_is_seeded_and_balanced():
    labels = np.repeat(np.arange(10), 50)
    tr, te = stratified_split(labels, 100, seed=0)
    tr2, te2 = stratified_split(labels, 100, seed=0)
    assert np.array_equal(te, te2) and len(te) == 100 and len(set(tr) & set(te)) == 0
    assert (np.bincount(labels[te]) == 10).all()
    assert not np.array_equal(te, stratified_split(labels, 100, seed=1)[1])


def test_augment_shifts_within_bounds_and_is_seeded():
    x = to_tensor(np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5, 1))
    a = augment_batch(x, shift=1, hflip=True, generator=torch.Generator().manual_seed(0))
    b = augment_batch(x, shift=1, hflip=True, generator=torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert set(a.unique().tolist()) <= set(x.unique().tolist()) | {0.0}
    same = augment_batch(x, shift=0, hflip=False, generator=torch.Generator())
    assert torch.equal(same, x)


def test_user_labels_without_injected_noise_have_no_truth(tmp_path):
    from noisyflow import recipes
    from noisyflow.config import DataParams, NoiseParams

    x = np.zeros((40, 4, 4, 1), np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(40) % 2)
    path = str(tmp_path / "d.npz")
    plain = recipes.prepare(DataParams("npz", path, 10, 0, NoiseParams(type="none")))
    assert plain.true_labels is None and plain.noise_mask is None
    assert plain.meta["truth_known"] is False and plain.meta["realised_noise_rate"] is None
    noisy = recipes.prepare(DataParams("npz", path, 10, 0, NoiseParams(type="symmetric", rate=0.5)))
    assert noisy.noise_mask.mean() == 0.5 and noisy.meta["truth_known"] is True
