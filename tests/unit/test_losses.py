"""Robust losses pinned to hand-computed values (methods.md section 1, 3.1)."""

import math

import pytest
import torch
from torch.testing import assert_close

import noisyflow.config  # noqa: F401  (imported first: config <-> methods import cycle)
from noisyflow.errors import ParamsError
from noisyflow.methods.losses import (
    LOSSES,
    GCEParams,
    LabelSmoothingParams,
    SCEParams,
    bind,
    ce,
    gce,
    label_smoothing,
    mae,
    one_hot,
    sce,
    smooth_targets,
)

# softmax(log [1, 2, 1]) = [0.25, 0.5, 0.25]
LOGITS = torch.log(torch.tensor([[1.0, 2.0, 1.0], [1.0, 2.0, 1.0]]))
Y = one_hot(torch.tensor([1, 0]), 3)  # p_y = 0.5 and 0.25
LN2, LN4 = math.log(2.0), math.log(4.0)


def test_registered_with_their_params():
    assert {"ce", "mae", "gce", "sce", "label_smoothing"} <= set(LOSSES.names())
    assert LOSSES.get("gce").params is GCEParams
    assert LOSSES.get("sce").params is SCEParams
    assert LOSSES.get("label_smoothing").params is LabelSmoothingParams
    assert SCEParams() == SCEParams(alpha=0.1, beta=1.0, A=-4.0)
    assert GCEParams().q == 0.7 and LabelSmoothingParams().epsilon == 0.1


def test_mae_is_twice_one_minus_p_y():
    assert_close(mae(LOGITS, Y), torch.tensor([1.0, 1.5]))


def test_gce_values():
    expected = torch.tensor([(1 - 0.5**0.5) / 0.5, (1 - 0.25**0.5) / 0.5])
    assert_close(gce(LOGITS, Y, GCEParams(q=0.5)), expected)


def test_gce_q_to_zero_is_ce_and_q_one_is_half_mae():
    logits = torch.randn(32, 7, generator=torch.Generator().manual_seed(0)) * 3
    t = one_hot(torch.arange(32) % 7, 7)
    assert_close(gce(logits, t, GCEParams(q=1e-4)), ce(logits, t), rtol=1e-3, atol=1e-4)
    assert_close(gce(logits, t, GCEParams(q=1.0)), mae(logits, t) / 2)


def test_sce_values_with_paper_a():
    # alpha CE + beta (-A)(1 - p_y): 0.1 ln 2 + 4 * 0.5 and 0.1 ln 4 + 4 * 0.75
    expected = torch.tensor([0.1 * LN2 + 2.0, 0.1 * LN4 + 3.0])
    assert_close(sce(LOGITS, Y, SCEParams()), expected)
    official = sce(LOGITS, Y, SCEParams(alpha=0.0, beta=1.0, A=math.log(1e-4)))
    assert_close(official, torch.tensor([9.2103404 * 0.5, 9.2103404 * 0.75]))


def test_sce_refuses_zero_weights():
    with pytest.raises(ParamsError, match="alpha and beta"):
        SCEParams(alpha=0.0, beta=0.0)


def test_label_smoothing_targets_and_value():
    smoothed = smooth_targets(Y, 0.3)
    assert_close(smoothed[0], torch.tensor([0.1, 0.8, 0.1]))
    assert_close(smoothed.sum(dim=1), torch.ones(2))
    # CE on [0.1, 0.8, 0.1] with p = [0.25, 0.5, 0.25]: 0.2 ln 4 + 0.8 ln 2
    value = label_smoothing(LOGITS, Y, LabelSmoothingParams(epsilon=0.3))
    assert_close(value[0], torch.tensor(0.2 * LN4 + 0.8 * LN2))
    assert_close(label_smoothing(LOGITS, Y, LabelSmoothingParams(epsilon=0.0)), ce(LOGITS, Y))


PARAMS = {
    "ce": None,
    "mae": None,
    "gce": GCEParams(q=0.3),
    "sce": SCEParams(),
    "label_smoothing": LabelSmoothingParams(epsilon=0.2),
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_every_loss_is_linear_in_the_targets(name):
    fn = bind(name, PARAMS[name])
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    t1 = one_hot(torch.tensor([0, 1, 2, 3, 0]), 4)
    t2 = one_hot(torch.tensor([3, 3, 1, 0, 2]), 4)
    mixed = fn(logits, 0.3 * t1 + 0.7 * t2)
    assert_close(mixed, 0.3 * fn(logits, t1) + 0.7 * fn(logits, t2))
    assert mixed.shape == (5,) and mixed.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(PARAMS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_every_loss_is_finite_on_extreme_logits(name, dtype):
    fn = bind(name, PARAMS[name])
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, 1e4]]).to(dtype)
    for k in range(3):
        t = one_hot(torch.full((3,), k), 3).to(dtype)
        value = fn(logits, t)
        assert value.dtype == torch.float32
        assert torch.isfinite(value).all() and (value >= 0).all()
