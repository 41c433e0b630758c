"""mixup and attentive feature mixup on a tiny linear "network" with fixed weights."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

import noisyflow.config  # noqa: F401  (imported first: config <-> methods import cycle)
from noisyflow.methods.losses import ce, one_hot
from noisyflow.methods.mixing import (
    MIXINGS,
    AFMParams,
    AttentiveFeatureMixing,
    AttentiveFeatureMixup,
    Mixup,
    MixupParams,
    NoMixing,
    afm_loss,
    draw_mixup,
    mix,
)


class LinearNet(nn.Module):
    """features(x) = x, head = a fixed linear map (identity unless given)."""

    def __init__(self, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        weight = torch.eye(2) if weight is None else weight
        self.head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(weight)
            self.head.bias.zero_()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def test_registered():
    assert {"none", "mixup", "afm"} <= set(MIXINGS.names())
    assert MIXINGS.get("mixup").params is MixupParams and MixupParams().alpha == 1.0
    assert AFMParams() == AFMParams(hidden=128, weight_mixed=1.5, weight_plain=0.5)


def test_draw_mixup_uses_rng_for_lambda_and_generator_for_perm():
    lam, perm = draw_mixup(
        0.5, 6, rng=np.random.default_rng(3), generator=torch.Generator().manual_seed(4)
    )
    assert lam == float(np.random.default_rng(3).beta(0.5, 0.5))  # not folded to max(l, 1-l)
    assert torch.equal(perm, torch.randperm(6, generator=torch.Generator().manual_seed(4)))


def test_mix_values():
    x = torch.tensor([[1.0], [2.0], [4.0]])
    t = one_hot(torch.tensor([0, 1, 2]), 3)
    mx, mt = mix(x, t, 0.25, torch.tensor([2, 0, 1]))
    assert_close(mx, torch.tensor([[3.25], [1.25], [2.5]]))
    assert_close(mt, torch.tensor([[0.25, 0.0, 0.75], [0.75, 0.25, 0.0], [0.0, 0.75, 0.25]]))


def test_mixup_loss_pins_lambda_perm_and_weights():
    net = LinearNet(torch.tensor([[1.0, -1.0], [0.5, 2.0]]))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0], [-1.0, 3.0]])
    labels = [0, 1, 1, 0]
    t = one_hot(torch.tensor(labels), 2)
    w = torch.tensor([1.0, 0.5, 2.0, 0.0])
    mixer = Mixup(MixupParams(alpha=2.0))
    got, plain = mixer.loss(
        net,
        None,
        x,
        t,
        w,
        ce,
        rng=np.random.default_rng(4),
        generator=torch.Generator().manual_seed(8),
    )
    lam = float(np.random.default_rng(4).beta(2.0, 2.0))  # 0.165: not folded
    perm = torch.randperm(4, generator=torch.Generator().manual_seed(8)).tolist()
    total = 0.0
    for b in range(4):  # the definition, written out per sample
        xb = [lam * x[b, d].item() + (1 - lam) * x[perm[b], d].item() for d in range(2)]
        z = [xb[0] - xb[1], 0.5 * xb[0] + 2.0 * xb[1]]
        lse = math.log(math.exp(z[0]) + math.exp(z[1]))
        loss_b = lam * (lse - z[labels[b]]) + (1 - lam) * (lse - z[labels[perm[b]]])
        total += w[b].item() * loss_b
    assert_close(got, torch.tensor(total / 4))
    assert plain is None  # mixup computes no logits of the un-mixed batch


def test_no_mixing_is_the_weighted_mean():
    net = LinearNet()
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = one_hot(torch.tensor([0, 1]), 2)
    got, logits = NoMixing(None).loss(
        net,
        None,
        x,
        t,
        torch.tensor([1.0, 0.5]),
        ce,
        rng=np.random.default_rng(0),
        generator=torch.Generator(),
    )
    assert_close(got, torch.tensor((softplus(-1.0) + 0.5 * softplus(-2.0)) / 2))
    assert_close(logits, net(x))


def fixed_attention() -> AttentiveFeatureMixup:
    """hidden 1: relu(f_i[0]) + relu(f_j[1]) -> w = sigmoid(that)."""
    att = AttentiveFeatureMixup(2, 1)
    with torch.no_grad():
        att.fc_a.weight.copy_(torch.tensor([[1.0, 0.0]]))
        att.fc_b.weight.copy_(torch.tensor([[0.0, 1.0]]))
        att.fc_weight.weight.copy_(torch.tensor([[1.0]]))
        for lin in (att.fc_a, att.fc_b, att.fc_weight):
            lin.bias.zero_()
    return att


W = 1.0 / (1.0 + math.exp(-3.0))  # sigmoid(relu(1) + relu(2))
M = (W, 2.0 * (1.0 - W))  # w [1, 0] + (1 - w) [0, 2]


def test_attention_block_values():
    mixed, w = fixed_attention()(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]))
    assert_close(w, torch.tensor([[W]]))
    assert_close(mixed, torch.tensor([M]))


@pytest.mark.parametrize("odd", [False, True])
def test_afm_loss_values(odd):
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]] + ([[3.0, 3.0]] if odd else []))
    labels = torch.tensor([0, 1] + ([0] if odd else []))
    w = torch.tensor([1.0, 0.5] + ([2.0] if odd else []))
    net = LinearNet()
    mixer = AttentiveFeatureMixing(AFMParams(hidden=1))
    got, logits = mixer.loss(
        net,
        fixed_attention(),
        x,
        one_hot(labels, 2),
        w,
        ce,
        rng=np.random.default_rng(0),
        generator=torch.Generator(),
    )
    # mixed pair (0, 1): CE(head(m), 0) weighted 1, CE(head(m), 1) weighted 0.5, mean of 2 rows
    mixed = (softplus(M[1] - M[0]) + 0.5 * softplus(M[0] - M[1])) / 2
    plain_rows = [softplus(-1.0), 0.5 * softplus(-2.0)] + ([2.0 * math.log(2.0)] if odd else [])
    expected = 1.5 * mixed + 0.5 * sum(plain_rows) / len(plain_rows)
    assert_close(got, torch.tensor(expected))
    assert_close(logits, net(x))  # the plain logits, for regularisers and statistics


def test_afm_trains_the_attention_and_needs_it():
    att = fixed_attention()
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = one_hot(torch.tensor([0, 1]), 2)
    loss, _ = afm_loss(
        x, LinearNet().head, att, t, torch.ones(2), ce, weight_mixed=1.0, weight_plain=0.0
    )
    loss.backward()
    assert att.fc_weight.weight.grad is not None and att.fc_weight.weight.grad.abs().sum() > 0
    mixer = AttentiveFeatureMixing(AFMParams())
    assert isinstance(mixer.module(16, 3), AttentiveFeatureMixup)
    assert mixer.module(16, 3).fc_a.out_features == 128
    with pytest.raises(TypeError, match="AttentiveFeatureMixup"):
        mixer.loss(
            LinearNet(),
            None,
            x,
            t,
            torch.ones(2),
            ce,
            rng=np.random.default_rng(0),
            generator=torch.Generator(),
        )


def test_afm_single_sample_is_plain_loss():
    x = torch.tensor([[1.0, 0.0]])
    t = one_hot(torch.tensor([0]), 2)
    got, _ = afm_loss(
        x,
        LinearNet().head,
        fixed_attention(),
        t,
        torch.ones(1),
        ce,
        weight_mixed=1.5,
        weight_plain=0.5,
    )
    assert_close(got, torch.tensor(0.5 * softplus(-1.0)))
