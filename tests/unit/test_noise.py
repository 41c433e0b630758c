import numpy as np
import pytest

from noisyflow.config import DEFAULT_PAIRS
from noisyflow.errors import ParamsError
from noisyflow.noise import inject_asymmetric, inject_noise, inject_symmetric, transition_matrix

LABELS = np.repeat(np.arange(10), 200)


@pytest.mark.parametrize("rate", [0.2, 0.4, 0.6])
def test_symmetric_realised_rate_is_exact_and_never_keeps_the_class(rate):
    noisy = inject_symmetric(LABELS, 10, rate, seed=0)
    flipped = noisy != LABELS
    assert flipped.mean() == pytest.approx(rate, abs=1e-3)
    assert noisy.min() >= 0 and noisy.max() <= 9


def test_symmetric_flips_spread_over_the_other_classes():
    noisy = inject_symmetric(LABELS, 10, 0.6, seed=1)
    T = transition_matrix(LABELS, noisy, 10)
    off = T[~np.eye(10, dtype=bool)]
    assert np.allclose(np.diag(T), 0.4, atol=0.06)
    assert off.max() < 0.12  # 0.6 / 9 = 0.067 expected per off-diagonal cell


def test_include_true_class_follows_the_dividemix_convention():
    noisy = inject_symmetric(LABELS, 10, 0.5, seed=0, include_true_class=True)
    assert (noisy != LABELS).mean() == pytest.approx(0.5 * 0.9, abs=0.03)


def test_asymmetric_respects_the_map_and_rate():
    noisy = inject_asymmetric(LABELS, 10, 0.4, seed=0, pairs=DEFAULT_PAIRS)
    mapping = dict(DEFAULT_PAIRS)
    changed = np.flatnonzero(noisy != LABELS)
    assert all(noisy[i] == mapping[LABELS[i]] for i in changed)
    for src in mapping:
        assert (noisy[src == LABELS] != src).mean() == pytest.approx(0.4, abs=1e-3)
    for untouched in (0, 2):
        assert (noisy[untouched == LABELS] == untouched).all()


@pytest.mark.parametrize("noise_type", ["symmetric", "asymmetric"])
def test_same_seed_same_labels_other_seed_other_labels(noise_type):
    kw = {"noise_type": noise_type, "rate": 0.4, "pairs": DEFAULT_PAIRS}
    a = inject_noise(LABELS, 10, seed=3, **kw)
    b = inject_noise(LABELS, 10, seed=3, **kw)
    c = inject_noise(LABELS, 10, seed=4, **kw)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_none_and_zero_rate_keep_labels():
    assert np.array_equal(inject_noise(LABELS, 10, noise_type="none", rate=0.4, seed=0), LABELS)
    assert np.array_equal(
        inject_noise(LABELS, 10, noise_type="symmetric", rate=0.0, seed=0), LABELS
    )


def test_unknown_noise_type_and_bad_pairs_raise():
    with pytest.raises(ParamsError, match="data.noise.type"):
        inject_noise(LABELS, 10, noise_type="pairflip", rate=0.4, seed=0)
    with pytest.raises(ParamsError, match="outside 0..9"):
        inject_asymmetric(LABELS, 10, 0.4, seed=0, pairs=[(1, 12)])


def test_transition_matrix_rows_sum_to_one():
    noisy = inject_symmetric(LABELS, 10, 0.3, seed=0)
    assert np.allclose(transition_matrix(LABELS, noisy, 10).sum(1), 1.0)
