"""Mixing regularisers (`method.mixup`) for supervised steps.

A mixer turns one labelled batch into a scalar loss. It may own learned parts (attentive feature
mixup's attention), created per network by `module()`, trained with the network and saved in
its checkpoint. Networks expose `features(x) -> (B, D)` and `head` (features -> logits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from noisyflow.config.parse import param
from noisyflow.methods.losses import LossFn
from noisyflow.methods.registry import NoParams, Registry

MIXINGS = Registry("mixup", section="mixing")


class Mixer:
    """Base class: the plain (unmixed) weighted loss."""

    def __init__(self, params: Any) -> None:
        self.params = params

    def module(self, feature_dim: int, num_classes: int) -> nn.Module | None:
        """Learned parts of this mixer for one network (None when it has none)."""
        return None

    def loss(
        self,
        net: nn.Module,
        extra: nn.Module | None,
        x: torch.Tensor,
        targets: torch.Tensor,
        weights: torch.Tensor,
        loss_fn: LossFn,
        *,
        rng: np.random.Generator,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean_b weights_b * loss_fn(net(x), targets)_b, the logits of the plain x or None).

        Args:
            x: (B, C, H, W) augmented inputs; targets: (B, K) soft targets; weights: (B,).
            rng: host RNG for scalars (mixing coefficients); generator: on x's device, for
                permutations.
        Returns:
            The scalar loss, and the logits of the un-mixed inputs when the mixer computed
            them (for regularisers and per-sample statistics), else None.
        """
        logits = net(x)
        return (weights * loss_fn(logits, targets)).mean(), logits


@MIXINGS.register("none", params=NoParams, paper="no mixing")
class NoMixing(Mixer):
    """No mixing: the loss on the batch as it is."""


# ----------------------------------------------------------------------------- mixup


@dataclass(frozen=True)
class MixupParams:
    """Zhang et al., ICLR 2018: lambda ~ Beta(alpha, alpha), once per batch."""

    alpha: float = param(1.0, gt=0.0)  # Beta(alpha, alpha); official CIFAR 1.0, label noise 8-32


def draw_mixup(
    alpha: float, batch_size: int, *, rng: np.random.Generator, generator: torch.Generator
) -> tuple[float, torch.Tensor]:
    """lambda ~ Beta(alpha, alpha) from the host `rng` and a permutation (B,) from `generator`.

    The permutation is drawn on the generator's device (no host round trip on CUDA).
    """
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(batch_size, generator=generator, device=generator.device)
    return lam, perm


def mix(
    x: torch.Tensor, targets: torch.Tensor, lam: float, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x' = lam x + (1 - lam) x[perm], t' = lam t + (1 - lam) t[perm].

    Args:
        x: (B, ...) inputs; targets: (B, K) soft targets; perm: (B,) permutation of the batch.
    Returns:
        (mixed inputs (B, ...), mixed targets (B, K)); targets on the simplex stay on it.
    """
    perm = perm.to(x.device)
    return lam * x + (1.0 - lam) * x[perm], lam * targets + (1.0 - lam) * targets[perm]


@MIXINGS.register("mixup", params=MixupParams, paper="Zhang et al., ICLR 2018")
class Mixup(Mixer):
    """mixup: train on convex combinations of random pairs of inputs and of their targets.

    As in the official code (facebookresearch/mixup-cifar10), lambda is drawn once per batch and
    not folded to max(lam, 1 - lam) (MixMatch does that). Because every loss is linear in the
    targets, loss(x', t') = lam loss(x', t_i) + (1 - lam) loss(x', t_perm(i)), the paper's form.
    Sample i keeps its own weight w_i (curriculum weights are not mixed).
    """

    def loss(
        self,
        net: nn.Module,
        extra: nn.Module | None,
        x: torch.Tensor,
        targets: torch.Tensor,
        weights: torch.Tensor,
        loss_fn: LossFn,
        *,
        rng: np.random.Generator,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, None]:
        """(mean_b w_b loss_fn(net(x'), t')_b on the mixed batch (see `mix`), None): no plain
        logits are computed."""
        lam, perm = draw_mixup(self.params.alpha, x.shape[0], rng=rng, generator=generator)
        mixed_x, mixed_t = mix(x, targets, lam, perm)
        return (weights * loss_fn(net(mixed_x), mixed_t)).mean(), None


# ----------------------------------------------------------------------------- attentive feature mixup


@dataclass(frozen=True)
class AFMParams:
    """Peng et al., ECCV 2020 (kaiwang960112/AFM): attention-weighted feature mixup of pairs."""

    hidden: int = param(128, ge=1)  # attention width (released code: 384 for ResNet-50, 96 for 18)
    weight_mixed: float = param(1.5, ge=0.0)  # weight of the loss on mixed pairs (code: 1.5)
    weight_plain: float = param(0.5, ge=0.0)  # weight of the loss on plain features (code: 0.5)


class AttentiveFeatureMixup(nn.Module):
    """The AFM block: w = sigmoid(W_w(ReLU(W_a f_i) + ReLU(W_b f_j))), m = w f_i + (1 - w) f_j.

    Peng, Wang, Zeng, Li, Yang, Qiao, "Suppressing Mislabeled Data via Grouping and
    Self-Attention", ECCV 2020. Groups are pairs (i from one half of the batch, j from the
    other); the learned weight lets a clean sample dominate the mixture of a clean/noisy pair.
    Linear layers have biases, as in the released `afm.py`.
    """

    def __init__(self, feature_dim: int, hidden: int) -> None:
        super().__init__()
        self.fc_a = nn.Linear(feature_dim, hidden)
        self.fc_b = nn.Linear(feature_dim, hidden)
        self.fc_weight = nn.Linear(hidden, 1)

    def forward(self, f_i: torch.Tensor, f_j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, D), (P, D) -> mixed features (P, D) and attention weights w (P, 1) in (0, 1)."""
        hidden = torch.relu(self.fc_a(f_i)) + torch.relu(self.fc_b(f_j))
        w = torch.sigmoid(self.fc_weight(hidden))
        return w * f_i + (1.0 - w) * f_j, w


def afm_loss(
    features: torch.Tensor,
    head: nn.Module,
    attention: AttentiveFeatureMixup,
    targets: torch.Tensor,
    weights: torch.Tensor,
    loss_fn: LossFn,
    *,
    weight_mixed: float,
    weight_plain: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight_mixed * L_mixed + weight_plain * L_plain, the plain logits) on one batch.

    Pairs: i = b for b < P, j = P + b, P = B // 2; an odd batch's last sample is in L_plain only.
        L_mixed = mean over the 2P rows of [w_i loss(head(m), t_i); w_j loss(head(m), t_j)]
                = mean_p (w_i loss(head(m_p), t_i) + w_j loss(head(m_p), t_j)) / 2
        L_plain = mean_b w_b loss(head(f_b), t_b)
    (w_b here are the per-sample *weights*; the attention w enters only through m, as in the
    released code, which trains head([m; m]) against [y_i; y_j] with one mean CE.)

    Args:
        features: (B, D); targets: (B, K); weights: (B,). Returns a scalar and (B, K) logits.
    """
    plain_logits = head(features)
    plain = (weights * loss_fn(plain_logits, targets)).mean()
    pairs = features.shape[0] // 2
    if pairs == 0:
        return weight_plain * plain, plain_logits
    half = slice(0, pairs), slice(pairs, 2 * pairs)
    mixed, _ = attention(features[half[0]], features[half[1]])
    logits = head(mixed)
    per_row = torch.cat(
        [
            weights[half[0]] * loss_fn(logits, targets[half[0]]),
            weights[half[1]] * loss_fn(logits, targets[half[1]]),
        ]
    )
    return weight_mixed * per_row.mean() + weight_plain * plain, plain_logits


@MIXINGS.register("afm", params=AFMParams, paper="Peng et al., ECCV 2020 (attentive feature mixup)")
class AttentiveFeatureMixing(Mixer):
    """Attentive feature mixup: pairs mixed in feature space with a learned attention weight.

    Convention of the released code (train.py): the loss on the mixed pairs gets weight 1.5 and
    the plain loss 0.5, although its flags are named the other way round (`--weight-naive 1.5`
    multiplies the mixed term). Pairs are the two halves of the (already shuffled) batch, so no
    randomness is drawn here. At inference the plain classifier is used, as in the paper.
    """

    def module(self, feature_dim: int, num_classes: int) -> nn.Module:
        return AttentiveFeatureMixup(feature_dim, self.params.hidden)

    def loss(
        self,
        net: nn.Module,
        extra: nn.Module | None,
        x: torch.Tensor,
        targets: torch.Tensor,
        weights: torch.Tensor,
        loss_fn: LossFn,
        *,
        rng: np.random.Generator,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(AFM loss of `net` on one batch, plain logits); `extra` is its AttentiveFeatureMixup."""
        if not isinstance(extra, AttentiveFeatureMixup):
            raise TypeError("afm needs the network's AttentiveFeatureMixup module (see module())")
        return afm_loss(
            net.features(x),
            net.head,
            extra,
            targets,
            weights,
            loss_fn,
            weight_mixed=self.params.weight_mixed,
            weight_plain=self.params.weight_plain,
        )
