"""The training steps' wiring, pinned by values on tiny deterministic inputs: which network's
division trains which network, what co-refinement and co-guessing are computed from, the mixing
coefficient, every loss term and its weight, FixMatch's weak/strong views, co-teaching's exchange.
A swapped argument or a missing term changes a number here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from noisyflow import recipes
from noisyflow.config import parse_params, with_overrides
from noisyflow.methods import losses as L
from noisyflow.methods.mixing import NoMixing
from noisyflow.methods.ssl import FixMatchParams, MixMatchParams
from noisyflow.methods.ssl import mixmatch as mm
from noisyflow.train import steps
from noisyflow.train.data import TrainData
from noisyflow.train.runtime import Runtime
from noisyflow.train.state import Randomness, TrainState
from noisyflow.types import Division, Prepared, Split

K = 2


class ConstNet(nn.Module):
    """Logits = a fixed vector whatever the input (trainable bias only)."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.head = nn.Linear(1, len(logits))
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.copy_(torch.tensor(logits))
        self.feature_dim = 1

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class PixelNet(nn.Module):
    """Logits = W @ flattened image: they depend on the input."""

    def __init__(self, weight: list[list[float]]) -> None:
        super().__init__()
        self.head = nn.Linear(4, K, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor(weight))
        self.feature_dim = 4

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


IMAGES = np.array(
    [[[[10], [20]], [[30], [40]]], [[[50], [0]], [[5], [90]]], [[[7], [70]], [[60], [2]]]]
    + [[[[200], [100]], [[0], [255]]]],
    dtype=np.uint8,
)  # (4, 2, 2, 1)
LABELS = np.array([0, 1, 0, 1])
TARGETS = F.one_hot(torch.tensor(LABELS), K).float()  # the given labels, one-hot


def context(nets: list[nn.Module], batch_size: int = 4) -> steps.Context:
    runtime = Runtime.cpu()
    data = TrainData(IMAGES, LABELS, runtime)
    opts = [torch.optim.SGD(n.parameters(), lr=0.0) for n in nets]
    state = TrainState(nets, opts, Randomness(0, runtime.device), [None] * len(nets))
    return steps.Context(
        data=data,
        runtime=runtime,
        state=state,
        num_classes=K,
        loss_fn=L.bind("ce", None),
        mixer=NoMixing(None),
        batch_size=batch_size,
        shift=0,
        hflip=False,
    )


def peer_view() -> Division:
    """The division network 0 trains on (already the peer's): samples 0 and 1 labelled."""
    prob = np.array([[0.9, 0.6, 0.2, 0.1]])
    return Division(prob, prob > 0.5, np.ones_like(prob), np.zeros_like(prob), ({},))


def test_each_network_trains_on_the_other_networks_division():
    prob = np.array([[0.9, 0.1, 0.8, 0.2], [0.3, 0.7, 0.4, 0.6]])
    div = Division(prob, prob > 0.5, np.ones_like(prob), prob, ({"net": 1}, {"net": 2}))
    assert_close(torch.as_tensor(div.for_net(0).clean_prob), torch.as_tensor(prob[1:2]))
    assert_close(torch.as_tensor(div.for_net(1).clean_prob), torch.as_tensor(prob[0:1]))
    assert div.for_net(0).fits == ({"net": 2},) and div.for_net(1).fits == ({"net": 1},)
    single = Division(prob[:1], prob[:1] > 0.5, np.ones((1, 4)), prob[:1], ({},))
    assert_close(torch.as_tensor(single.for_net(0).clean_prob), torch.as_tensor(prob[:1]))


def tiny_prepared() -> Prepared:
    idx = np.arange(4)
    train = Split(IMAGES, LABELS, idx, LABELS.copy())
    return Prepared(train, Split(IMAGES, LABELS, idx), ("a", "b"))


@pytest.mark.parametrize("networks", [1, 2])
def test_train_hands_each_network_the_peers_division(monkeypatch, networks):
    params = with_overrides(
        parse_params({}),
        {"method.networks": networks, "train.epochs": 1, "train.batch_size": 2},
    )
    prepared = tiny_prepared()
    runtime = Runtime.cpu()
    config = recipes.model_config(params, prepared)
    nets = recipes.build_nets(params, prepared, config, runtime)
    prob = np.array([[0.9, 0.1, 0.8, 0.2], [0.3, 0.7, 0.4, 0.6]])[:networks]
    first = Division(prob, prob > 0.5, np.ones_like(prob), prob, ({},) * networks)
    seen = {}

    def fake_train_net(ctx, k, own, params, ssl, epoch, where):
        seen[k] = own.clean_prob.copy()
        return {}

    monkeypatch.setattr(recipes, "_train_net", fake_train_net)
    recipes.train(params, prepared, nets, first, runtime)
    if networks == 2:
        assert_close(torch.as_tensor(seen[0]), torch.as_tensor(prob[1:2]))
        assert_close(torch.as_tensor(seen[1]), torch.as_tensor(prob[0:1]))
    else:
        assert_close(torch.as_tensor(seen[0]), torch.as_tensor(prob))


def test_mixmatch_step_values(monkeypatch):
    a, b = [2.0, -1.0], [-0.5, 1.5]
    ctx = context([ConstNet(a), ConstNet(b)])
    p = MixMatchParams(alpha=4.0, temperature=0.5, lambda_u=25.0, rampup_epochs=16)
    calls = {}
    real_refine, real_guess, real_mix = mm.co_refine, mm.co_guess, mm.mixmatch_mix

    def refine(probs, onehot, w, temperature):
        calls["refine"] = (probs, onehot, w, temperature)
        return real_refine(probs, onehot, w, temperature)

    def guess(probs, temperature):
        calls["guess"] = (probs, temperature)
        return real_guess(probs, temperature)

    def mix(inputs, targets, lam, perm):
        calls["mix"] = (targets, lam, perm)
        return real_mix(inputs, targets, lam, perm)

    monkeypatch.setattr(mm, "co_refine", refine)
    monkeypatch.setattr(mm, "co_guess", guess)
    monkeypatch.setattr(mm, "mixmatch_mix", mix)
    monkeypatch.setattr(mm, "mix_lambda", lambda alpha, rng: 0.7)
    stats = steps.mixmatch_pass(ctx, 0, peer_view(), p, epoch=8, where="test")

    pa, pb = F.softmax(torch.tensor(a), 0), F.softmax(torch.tensor(b), 0)
    probs, onehot, w, temperature = calls["refine"]
    # the labelled set {0, 1} in the order the stage's generator (seed 0) shuffles it
    order = torch.tensor([0, 1])[torch.randperm(2, generator=torch.Generator().manual_seed(0))]
    assert_close(probs, pa.expand(2, K))  # co-refined with the network's OWN prediction
    assert_close(w, torch.tensor([0.9, 0.6])[order])  # with the division's clean probability
    assert_close(onehot, TARGETS[order])
    assert temperature == 0.5
    guesses, _ = calls["guess"]  # co-guessed by the network AND its peer, two views each
    assert len(guesses) == 4
    for g, expect in zip(guesses, (pa, pa, pb, pb), strict=True):
        assert_close(g, expect.expand(2, K))

    targets, lam, _ = calls["mix"]
    assert lam == 0.7
    y = TARGETS[order]
    wcol = torch.tensor([0.9, 0.6])[order][:, None]
    tx = mm.sharpen(wcol * y + (1 - wcol) * pa, 0.5)
    tu = mm.sharpen(((pa + pa + pb + pb) / 4).expand(2, K), 0.5)
    assert_close(targets, torch.cat([tx, tx, tu, tu]))

    mixed_t = 0.7 * targets + 0.3 * targets[calls["mix"][2]]
    logits = torch.tensor(a).expand(8, K)
    loss_x = L.ce(logits[:4], mixed_t[:4]).mean()
    loss_u = (F.softmax(logits[4:], 1) - mixed_t[4:]).pow(2).mean()
    prior = (torch.log(torch.tensor(0.5)) - torch.log(pa)).mean()  # KL(uniform || mean p)
    ramp = 8 / 16  # epoch 8 of a 16-epoch ramp
    expected = loss_x + 25.0 * ramp * loss_u + 1.0 * prior
    assert stats["loss"] == pytest.approx(float(expected), rel=1e-5)
    assert stats["loss_x"] == pytest.approx(float(loss_x), rel=1e-5)
    assert stats["loss_u"] == pytest.approx(float(loss_u), rel=1e-5)


def test_mixmatch_with_one_network_guesses_with_itself(monkeypatch):
    a = [1.0, 0.0]
    ctx = context([ConstNet(a)])
    calls = {}
    real_guess = mm.co_guess
    monkeypatch.setattr(
        mm, "co_guess", lambda probs, t: calls.setdefault("g", probs) and real_guess(probs, t)
    )
    steps.mixmatch_pass(ctx, 0, peer_view(), MixMatchParams(), epoch=0, where="test")
    pa = F.softmax(torch.tensor(a), 0)
    assert len(calls["g"]) == 4
    for g in calls["g"]:
        assert_close(g, pa.expand(2, K))


def test_fixmatch_pseudo_labels_come_from_the_weak_view_and_train_the_strong(monkeypatch):
    net = PixelNet([[0.01, -0.02, 0.03, 0.0], [-0.01, 0.02, 0.0, 0.01]])
    ctx = context([net, PixelNet([[0.0] * 4] * 2)], batch_size=2)
    p = FixMatchParams(threshold=0.6, lambda_u=3.0, mu=1, prior_weight=0.0)
    seen = {}

    def strong(x, *, ops, magnitude, generator):
        seen["strong_in"] = x.clone()
        return 1.0 - x

    def unlabelled_loss(weak, strong_logits, threshold):
        seen["args"] = (weak, strong_logits, threshold)
        return torch.tensor(0.25), torch.ones(len(weak))

    stats = steps.fixmatch_pass(
        ctx, 0, peer_view(), p, strong=strong, unlabelled_loss=unlabelled_loss, where="test"
    )
    weak, strong_logits, threshold = seen["args"]
    u = seen["strong_in"]  # the unlabelled batch (shift 0, no flip: the weak view is the image)
    assert threshold == 0.6
    assert_close(weak, net(u))
    assert_close(strong_logits, net(1.0 - u))
    x = ctx.data.batch(torch.tensor([0, 1]))
    loss_x = L.ce(net(x), TARGETS[[0, 1]]).mean()
    assert stats["loss"] == pytest.approx(loss_x.item() + 3.0 * 0.25, rel=1e-5)


def test_coteaching_updates_each_network_on_the_peers_small_loss_samples():
    na = PixelNet([[0.02, -0.01, 0.0, 0.01], [0.0, 0.01, -0.02, 0.0]])
    nb = PixelNet([[-0.01, 0.0, 0.02, 0.0], [0.01, 0.0, 0.0, -0.01]])
    ctx = context([na, nb])
    seen = {}

    def select(loss_a, loss_b, keep, idx):
        seen["args"] = (loss_a.detach(), loss_b.detach(), keep)
        seen["idx"] = idx
        from noisyflow.methods.selection.coteaching import coteaching_losses

        return coteaching_losses(loss_a, loss_b, keep)

    stats = steps.coteaching_pass(
        ctx, ctx.data.all_indices(), keep_fraction=0.5, select=select, where="test"
    )
    loss_a, loss_b, keep = seen["args"]
    x = ctx.data.batch(torch.arange(4))
    assert keep == 0.5  # the batch order is a permutation: compare as multisets
    assert sorted(seen["idx"].tolist()) == [0, 1, 2, 3]  # the batch's sample indices
    assert sorted(loss_a.tolist()) == pytest.approx(sorted(L.ce(na(x), TARGETS).tolist()), rel=1e-5)
    assert sorted(loss_b.tolist()) == pytest.approx(sorted(L.ce(nb(x), TARGETS).tolist()), rel=1e-5)
    # net a learns from the two samples with b's smallest losses, and vice versa
    kept_by_b = torch.argsort(loss_b)[:2]
    kept_by_a = torch.argsort(loss_a)[:2]
    assert stats["loss_net1"] == pytest.approx(float(loss_a[kept_by_b].mean()), rel=1e-5)
    assert stats["loss_net2"] == pytest.approx(float(loss_b[kept_by_a].mean()), rel=1e-5)


def test_self_learning_target_blends_given_and_pseudo_labels():
    ctx = context([ConstNet([0.0, 0.0])])
    pseudo = torch.tensor([1, 1, 0, 1])
    t = steps.blended_targets(ctx, pseudo, 0.3)(torch.tensor([0, 1, 2]))
    assert_close(t, torch.tensor([[0.7, 0.3], [0.0, 1.0], [1.0, 0.0]]))


def test_supervised_pass_weights_and_regularisers():
    net = PixelNet([[0.01, -0.02, 0.03, 0.0], [-0.01, 0.02, 0.0, 0.01]])
    ctx = context([net])
    ctx.penalty, ctx.l1 = 0.5, 0.1
    weights = torch.tensor([1.0, 0.0, 0.5, 2.0])
    stats = steps.supervised_pass(
        ctx, 0, ctx.data.all_indices(), targets=steps.soft_targets(ctx), weights=weights, where="t"
    )
    x = ctx.data.batch(torch.arange(4))
    logits = net(x)
    expected = (
        (weights * L.ce(logits, TARGETS)).mean()
        + 0.5 * L.neg_entropy(logits)
        + 0.1 * net.head.weight.abs().sum()
    )
    assert stats["loss"] == pytest.approx(expected.item(), rel=1e-5)


def test_aum_relabels_each_networks_threshold_set_and_records_margins_per_epoch():
    from noisyflow.methods.selection.aum import AUMSelection

    sel = AUMSelection(None, seed=3)
    stats: dict = {}
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
    sel.init_stats(stats, labels, 2, 3, epochs=2)
    thr = stats["aum_threshold"]
    assert thr.sum(1).tolist() == [3, 3] and not (thr[0] & thr[1]).any()  # N // (K + 1) each
    for k in (0, 1):
        assigned = sel.training_labels(stats, labels, k)
        assert (assigned[thr[k]] == 3).all() and (assigned[~thr[k]] == labels[~thr[k]]).all()
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 5.0, 0.0]])
    sel.record(stats, 1, torch.tensor([4, 7]), logits, torch.tensor([0, 2]), 1)
    assert stats["aum_epoch_sum"][1, 1, [4, 7]].tolist() == [2.0, 3.0]  # z_y - max other
    assert stats["aum_epoch_seen"][1, 1].sum() == 2 and stats["aum_epoch_sum"][0].abs().sum() == 0


def test_self_learning_pseudo_labels_prototype_or_decided():
    """y_hat of a round: Han et al.'s class of the most similar prototypes, or with
    `pseudo_labels: decided` only the changes the `correct:` rule accepts (network and prototypes
    agree, with confidence): sample 6 looks like class 1 and the network says 1, so both modes
    relabel it; sample 7 looks like class 1 but the network says 0, so only `prototype` does."""
    x = np.array(
        [[255, 0, 0, 0], [250, 12, 0, 0], [245, 0, 12, 0]]  # class 0
        + [[0, 255, 0, 0], [12, 250, 0, 0], [0, 245, 12, 0]]  # class 1
        + [[0, 255, 0, 0], [0, 250, 0, 128]],  # labelled 0, they look like class 1
        dtype=np.uint8,
    ).reshape(-1, 2, 2, 1)
    labels = np.array([0, 0, 0, 1, 1, 1, 0, 0])
    idx = np.arange(8)
    prepared = Prepared(Split(x, labels, idx), Split(x, labels, idx), ("a", "b"))
    runtime = Runtime.cpu()
    data = TrainData(x, labels, runtime)
    net = PixelNet([[0.0, 0.0, 0.0, 0.0], [-10.0, 10.0, 0.0, -30.0]])  # pixel 3 votes for 0
    assert net(data.batch(torch.arange(8))).argmax(1).tolist() == [0, 0, 0, 1, 1, 1, 1, 0]

    def pseudo(mode: str) -> list[int]:
        params = with_overrides(
            parse_params({}),
            {
                "method.correction": "prototype",
                "correction.prototype.prototypes": 1,
                "correction.prototype.samples_per_class": 4,
                "correction.prototype.pseudo_labels": mode,
                "correct.plurality": False,  # 8 samples: too few for its class counts
            },
        )
        rng = np.random.default_rng(0)
        out = recipes._pseudo_labels(
            params, prepared, net, data, np.ones(8, bool), np.zeros(8), rng
        )
        return out.tolist()

    assert pseudo("prototype") == [0, 0, 0, 1, 1, 1, 1, 1]
    assert pseudo("decided") == [0, 0, 0, 1, 1, 1, 1, 0]
