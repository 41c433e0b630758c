import numpy as np
import pytest
import torch

from noisyflow.data import augment_batch, stratified_split, to_tensor
from noisyflow.errors import InputDataError


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


def test_stratified_split_explains_what_is_short():
    labels = np.array([0, 0, 0, 1, 1, 1, 2])
    with pytest.raises(InputDataError, match=r"class 'c' has 1 sample\(s\)"):
        stratified_split(labels, 3, seed=0, classes=("a", "b", "c"))
    with pytest.raises(InputDataError, match=r"data.val_size: 1 is smaller than the 2 classes"):
        stratified_split(labels[:6], 1, seed=0, key="data.val_size")
    with pytest.raises(InputDataError, match=r"must be between 1 and 5"):
        stratified_split(labels[:6], 6, seed=0)
