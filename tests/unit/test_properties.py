"""Property-based tests (hypothesis) of the pure method pieces.

Derandomized and without an example database, so the suite is deterministic (hypothesis may
still cache constants in a self-ignored .hypothesis/ folder).
"""

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

import noisyflow.config  # noqa: F401  (imported first: config <-> methods import cycle)
from noisyflow.methods.losses import (
    GCEParams,
    LabelSmoothingParams,
    SCEParams,
    bind,
    ce,
    gce,
    mae,
)
from noisyflow.methods.mixing import mix
from noisyflow.methods.selection.coteaching import num_kept, small_loss_keep
from noisyflow.methods.selection.gmm import GMMParams, fit_clean_probability
from noisyflow.methods.ssl.mixmatch import sharpen

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None)

LOSS_PARAMS = {
    "ce": None,
    "mae": None,
    "gce": GCEParams(q=0.7),
    "sce": SCEParams(),
    "label_smoothing": LabelSmoothingParams(),
}


@st.composite
def logits_and_targets(draw, bound=1e4):
    """(B, K) logits in [-bound, bound] and (B, K) targets on the simplex."""
    b = draw(st.integers(1, 4))
    k = draw(st.integers(2, 6))
    values = st.floats(-bound, bound, allow_nan=False, width=32)
    logits = torch.tensor(draw(st.lists(values, min_size=b * k, max_size=b * k))).view(b, k)
    raw = draw(st.lists(st.floats(0.0, 1.0, width=32), min_size=b * k, max_size=b * k))
    weights = torch.tensor(raw).view(b, k) + 1e-3
    return logits, weights / weights.sum(dim=1, keepdim=True)


@PROPERTY
@given(
    data=logits_and_targets(),
    name=st.sampled_from(sorted(LOSS_PARAMS)),
    bf16=st.booleans(),
)
def test_every_loss_finite_and_nonnegative(data, name, bf16):
    logits, targets = data
    if bf16:
        logits, targets = logits.bfloat16(), targets.bfloat16()
    value = bind(name, LOSS_PARAMS[name])(logits, targets)
    assert value.shape == (logits.shape[0],)
    assert torch.isfinite(value).all() and (value >= -1e-6).all()


@PROPERTY
@given(
    data=logits_and_targets(bound=20.0),
    q1=st.floats(1e-3, 1.0),
    q2=st.floats(1e-3, 1.0),
)
def test_gce_interpolates_between_ce_and_half_mae(data, q1, q2):
    """(1 - p^q) / q decreases in q: CE (q -> 0) >= GCE(q) >= MAE / 2 (q = 1)."""
    logits, targets = data
    low, high = sorted((q1, q2))
    at_low = gce(logits, targets, GCEParams(q=low))
    at_high = gce(logits, targets, GCEParams(q=high))
    tol = 1e-5 * (1 + ce(logits, targets))
    assert (ce(logits, targets) + tol >= at_low).all()
    assert (at_low + tol >= at_high).all()
    assert (at_high + tol >= mae(logits, targets) / 2).all()


@PROPERTY
@given(data=logits_and_targets(), lam=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_mixup_keeps_targets_on_the_simplex(data, lam, seed):
    x, targets = data
    perm = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))
    _, mixed = mix(x, targets, lam, perm)
    assert (mixed >= 0).all()
    assert_close(mixed.sum(dim=1), torch.ones(len(targets)))


@PROPERTY
@given(
    losses=st.lists(st.floats(0.0, 50.0), min_size=4, max_size=60),
    exponent=st.integers(-20, 20),
)
def test_gmm_split_is_invariant_to_loss_scaling(losses, exponent):
    """Scaling by a power of two is exact in floating point, so the split must not move at all."""
    x = np.asarray(losses)
    assume(np.ptp(x) > 1e-6)
    base, fit = fit_clean_probability(x, GMMParams())
    scaled, scaled_fit = fit_clean_probability(x * 2.0**exponent, GMMParams())
    assert np.array_equal(base, scaled)
    assert fit["means"] == scaled_fit["means"] and fit["weights"] == scaled_fit["weights"]
    assert np.array_equal(base > 0.5, scaled > 0.5)


@PROPERTY
@given(
    logits=st.lists(st.floats(-20.0, 20.0), min_size=2, max_size=8),
    temperature=st.floats(0.05, 1.0),
)
def test_sharpening_keeps_the_argmax(logits, temperature):
    probs = torch.softmax(torch.tensor([logits], dtype=torch.float64), dim=1)
    top2 = torch.topk(probs, 2, dim=1).values[0]
    assume(float(top2[0] - top2[1]) > 1e-6)
    sharpened = sharpen(probs, temperature)
    assert int(sharpened.argmax()) == int(probs.argmax())
    assert_close(sharpened.sum(dim=1), torch.ones(1, dtype=torch.float64))
    assert sharpened.max() >= probs.max() - 1e-12  # T <= 1 never flattens


@PROPERTY
@given(
    losses=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=40),
    keep=st.floats(0.0, 1.0),
)
def test_small_loss_keep_keeps_the_smallest(losses, keep):
    values = torch.tensor(losses)
    mask = small_loss_keep(values, keep)
    assert int(mask.sum()) == num_kept(len(losses), keep)
    if mask.any() and (~mask).any():
        assert values[mask].max() <= values[~mask].min()
