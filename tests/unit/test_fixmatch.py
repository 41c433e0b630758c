"""FixMatch's unlabelled loss and the batched strong augmentation (methods.md section 7)."""

import math

import pytest
import torch
from torch.testing import assert_close

import noisyflow.config  # noqa: F401  (imported first: config <-> methods import cycle)
from noisyflow.methods.ssl import SSLS, FixMatchParams
from noisyflow.methods.ssl.fixmatch import (
    FILL,
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    adjust_sharpness,
    affine,
    autocontrast,
    cutout,
    fixmatch_unlabelled_loss,
    geometric_matrix,
    posterize,
    smooth,
    solarize,
    strong_augment,
    strong_ops,
)


def test_unlabelled_loss_values_mask_and_denominator():
    weak = torch.log(torch.tensor([[0.96, 0.04], [0.5, 0.5], [0.02, 0.98], [0.05, 0.95]]))
    weak.requires_grad_(True)
    strong = torch.tensor([[0.0, 0.0], [5.0, -5.0], [0.0, math.log(3.0)], [0.0, 0.0]])
    strong.requires_grad_(True)
    loss, mask = fixmatch_unlabelled_loss(weak, strong, threshold=0.95)
    assert mask.tolist() == [1.0, 0.0, 1.0, 1.0]  # 0.95 itself passes (>=)
    # CE(strong, pseudo): ln 2 (label 0), ln(4/3) (label 1), ln 2 (label 1); / 4 samples
    assert_close(loss, torch.tensor((2 * math.log(2.0) + math.log(4.0 / 3.0)) / 4))
    loss.backward()
    assert weak.grad is None  # stop-gradient through the pseudo-label
    assert strong.grad[1].abs().sum() == 0  # masked sample: no gradient


def test_unlabelled_loss_all_masked_is_zero():
    loss, mask = fixmatch_unlabelled_loss(torch.zeros(3, 4), torch.randn(3, 4), 0.95)
    assert loss.item() == 0.0 and mask.sum() == 0


def test_fixmatch_registered_with_params():
    assert SSLS.get("fixmatch").params is FixMatchParams
    assert FixMatchParams().threshold == 0.95 and FixMatchParams().mu == 7
    assert FixMatchParams().prior_weight == 1.0  # on by default: RESULTS, the tuning-seed rule


IMG = torch.tensor([[[0.2, 0.4], [0.6, 0.8]], [[0.1, 0.1], [0.1, 0.5]], [[0.0, 0.3], [0.9, 1.0]]])


def test_colour_op_values():
    x = IMG[None]  # (1, 3, 2, 2)
    assert_close(adjust_brightness(x, torch.tensor([0.5])), x * 0.5)
    grey = 0.299 * IMG[0] + 0.587 * IMG[1] + 0.114 * IMG[2]
    assert_close(adjust_saturation(x, torch.tensor([0.0])), grey.expand(1, 3, 2, 2))
    assert_close(adjust_contrast(x, torch.tensor([0.0])), grey.mean().expand(1, 3, 2, 2))
    assert_close(adjust_contrast(x, torch.tensor([2.0])), 2 * x - grey.mean())
    assert_close(solarize(x, torch.tensor([0.5])), torch.where(x > 0.5, 1 - x, x))
    # 0.6 -> 153 = 0b10011001: top bit 128; 0.8 -> 204 = 0b11001100 -> 192 with two bits
    got = posterize(torch.tensor([[[[0.6, 0.8]]]]), torch.tensor([1.0]))
    assert_close(got, torch.tensor([[[[128 / 255, 128 / 255]]]]))
    got = posterize(torch.tensor([[[[0.6, 0.8]]]]), torch.tensor([2.0]))
    assert_close(got, torch.tensor([[[[128 / 255, 192 / 255]]]]))
    same = posterize(x, torch.tensor([8.0]))
    assert torch.equal(same, x)
    stretched = autocontrast(x, torch.tensor([1.0]))
    assert_close(stretched[0, 0], torch.tensor([[0.0, 1 / 3], [2 / 3, 1.0]]))
    assert_close(stretched[0, 1], torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    assert_close(autocontrast(x, torch.tensor([0.5]))[0, 2], IMG[2])  # already 0..1


def test_sharpness_smooths_the_interior_only():
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1] = 1.0
    assert_close(smooth(x)[0, 0, 1, 1], torch.tensor(5 / 13))
    assert_close(smooth(x)[0, 0, 0], torch.zeros(3))  # border unchanged
    assert_close(adjust_sharpness(x, torch.tensor([1.0])), x)
    assert_close(adjust_sharpness(x, torch.tensor([0.0]))[0, 0, 1, 1], torch.tensor(5 / 13))


def test_affine_identity_and_exact_translation():
    x = torch.rand(2, 1, 4, 5, generator=torch.Generator().manual_seed(0))
    assert_close(affine(x, torch.eye(3).repeat(2, 1, 1)), x)
    shift = geometric_matrix("translate_x", torch.tensor([1 / (0.3 * 5)] * 2), 4, 5)  # 1 pixel
    out = affine(x, shift)
    assert_close(out[..., :-1], x[..., 1:])  # samples one pixel to the right
    assert_close(out[..., -1], torch.full_like(out[..., -1], FILL))


def test_cutout_square_clipped_at_the_border():
    x = torch.zeros(2, 1, 4, 4)
    out = cutout(x, 2, torch.tensor([[1, 1], [-1, 3]]))
    assert out[0, 0].tolist() == [[0, 0, 0, 0], [0, 0.5, 0.5, 0], [0, 0.5, 0.5, 0], [0, 0, 0, 0]]
    assert out[1, 0].tolist() == [[0, 0, 0, 0.5], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert torch.equal(cutout(x, 0, torch.zeros(2, 2, dtype=torch.long)), x)


def test_ops_depend_on_channels():
    assert "saturation" in strong_ops(3) and "saturation" not in strong_ops(1)
    assert len(strong_ops(3)) == 13


def augment(x, seed, **kw):
    kw = {"ops": 2, "magnitude": 0.5} | kw
    return strong_augment(x, generator=torch.Generator().manual_seed(seed), **kw)


@pytest.mark.parametrize("channels", [1, 3])
def test_strong_augment_shape_range_reproducible(channels):
    x = torch.rand(8, channels, 12, 16, generator=torch.Generator().manual_seed(1))
    out = augment(x, 5)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, augment(x, 5))
    assert not torch.equal(out, augment(x, 6))


def test_strong_augment_differs_per_sample():
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2)).repeat(16, 1, 1, 1)
    out = augment(x, 0, magnitude=1.0)
    distinct = {tuple(row.flatten().tolist()) for row in out}
    assert len(distinct) == 16


@pytest.mark.parametrize("channels", [1, 3])
def test_strong_augment_fades_to_identity(channels):
    # without saturated pixels (solarize's threshold tends to 1, which would still invert 1.0)
    x = 0.9 * torch.rand(16, channels, 8, 8, generator=torch.Generator().manual_seed(3))
    assert_close(augment(x, 0, ops=3, magnitude=1e-7), x, rtol=0, atol=1e-5)
