"""More of the training steps' wiring, written against the mutants `make mutation` left alive:
network 1's view of MixMatch, the peer left in eval mode, the ramp inside an epoch, every pass
drawing only from the stage's generators, the weight averages updated after each step, the
pass's name in the NaN error, co-teaching's gradients, FixMatch's all-labelled branch and its
strong-augmentation settings. Values on tiny deterministic inputs, as in test_wiring.py."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.testing import assert_close

from noisyflow.errors import TrainingError
from noisyflow.methods import losses as L
from noisyflow.methods.selection.coteaching import coteaching_losses
from noisyflow.methods.ssl import FixMatchParams, MixMatchParams
from noisyflow.methods.ssl import mixmatch as mm
from noisyflow.methods.ssl.fixmatch import fixmatch_unlabelled_loss
from noisyflow.train import steps
from noisyflow.train.data import weak_augment
from noisyflow.types import Division
from tests.unit.test_wiring import IMAGES, TARGETS, ConstNet, K, PixelNet, context, peer_view

W_A = [[0.02, -0.01, 0.0, 0.01], [0.0, 0.01, -0.02, 0.0]]
W_B = [[-0.01, 0.0, 0.02, 0.0], [0.01, 0.0, 0.0, -0.01]]


def trained_context(batch_size: int = 2, lr: float = 0.1, *, ema: bool = False):
    """Two PixelNets with SGD at `lr`, shift 1 and flips on (so augmentation draws too)."""
    ctx = context([PixelNet(W_A), PixelNet(W_B)], batch_size=batch_size)
    ctx.state.optimizers = [torch.optim.SGD(n.parameters(), lr=lr) for n in ctx.state.nets]
    ctx.shift, ctx.hflip = 1, True
    if ema:
        ctx.state.averages = [
            AveragedModel(n, multi_avg_fn=get_ema_multi_avg_fn(0.5)) for n in ctx.state.nets
        ]
    return ctx


def half_labelled() -> Division:
    prob = np.array([[0.9, 0.2, 0.8, 0.1]])
    return Division(prob, prob > 0.5, np.array([[1.0, 0.5, 0.25, 1.0]]), prob, ({},))


def run(kind: str, ctx: steps.Context, where: str = "test") -> dict[str, float]:
    if kind == "supervised":
        idx = ctx.data.all_indices()
        return steps.supervised_pass(ctx, 0, idx, targets=steps.soft_targets(ctx), where=where)
    if kind == "coteaching":
        return steps.coteaching_pass(
            ctx,
            ctx.data.all_indices(),
            keep_fraction=0.5,
            select=lambda a, b, keep, idx: coteaching_losses(a, b, keep),
            where=where,
        )
    if kind == "mixmatch":
        return steps.mixmatch_pass(ctx, 0, half_labelled(), MixMatchParams(), epoch=2, where=where)
    p = FixMatchParams(threshold=0.0, mu=1)
    from noisyflow.methods.ssl.fixmatch import strong_augment

    return steps.fixmatch_pass(
        ctx,
        0,
        half_labelled(),
        p,
        strong=strong_augment,
        unlabelled_loss=fixmatch_unlabelled_loss,
        where=where,
    )


KINDS = ["supervised", "coteaching", "mixmatch", "fixmatch"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_pass_draws_only_from_the_stages_generators(kind):
    """Same stage seed, different global torch seeds: the same batches, augmentations, mixing
    and so the same weights (a pass that drew from the global generator would differ)."""
    weights = []
    for global_seed in (1, 2):
        ctx = trained_context()
        torch.manual_seed(global_seed)
        stats = run(kind, ctx)
        weights.append(([n.head.weight.detach().clone() for n in ctx.state.nets], stats))
    for a, b in zip(weights[0][0], weights[1][0], strict=True):
        assert_close(a, b, rtol=0, atol=0)
    assert weights[0][1] == weights[1][1]
    moved = weights[0][0][0] - torch.tensor(W_A)
    assert moved.abs().sum() > 0  # the pass did train


def test_augment_is_the_shift_and_flip_of_the_stage_generator():
    ctx = trained_context()
    x = ctx.data.batch(ctx.data.all_indices())
    expected = weak_augment(x, shift=1, hflip=True, generator=torch.Generator().manual_seed(0))
    assert_close(ctx.augment(x), expected)
    no_flip = weak_augment(x, shift=1, hflip=False, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(expected, no_flip)  # seed 0 flips at least one image


@pytest.mark.parametrize("kind", KINDS)
def test_weight_averages_follow_every_trained_network_after_each_step(kind):
    """A single batch: the average's first update copies the network (AveragedModel), so after
    the pass each trained network's average equals it; an untouched average would not."""
    ctx = trained_context(batch_size=4, ema=True)
    run(kind, ctx)
    trained = [0, 1] if kind == "coteaching" else [0]
    for k, (net, avg) in enumerate(zip(ctx.state.nets, ctx.state.averages, strict=True)):
        if k in trained:
            assert int(avg.n_averaged) == 1
            assert_close(avg.module.head.weight, net.head.weight)
        else:
            assert int(avg.n_averaged) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_non_finite_loss_names_the_pass(kind):
    ctx = trained_context(batch_size=4)
    for net in ctx.state.nets:
        with torch.no_grad():
            net.head.weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match=r"^warmup epoch 3, batch 0: the loss is NaN"):
        run(kind, ctx, where="warmup epoch 3")


def test_mixmatch_for_network_1_refines_with_itself_and_co_guesses_with_network_0(monkeypatch):
    a, b = [2.0, -1.0], [-0.5, 1.5]
    ctx = context([ConstNet(a), ConstNet(b)])
    calls = {}
    real_refine, real_guess = mm.co_refine, mm.co_guess
    monkeypatch.setattr(mm, "co_refine", _recording(calls, "px", real_refine))
    monkeypatch.setattr(mm, "co_guess", _recording(calls, "g", real_guess))
    ctx.state.nets[0].train()
    steps.mixmatch_pass(ctx, 1, peer_view(), MixMatchParams(), epoch=0, where="test")
    pa, pb = F.softmax(torch.tensor(a), 0), F.softmax(torch.tensor(b), 0)
    assert_close(calls["px"], pb.expand(2, K))  # network 1 refines with its own prediction
    for g, expect in zip(calls["g"], (pb, pb, pa, pa), strict=True):  # own views, then peer's
        assert_close(g, expect.expand(2, K))
    assert not ctx.state.nets[0].training  # the peer guesses in eval mode (BN statistics kept)
    assert ctx.state.nets[1].training


def _recording(calls: dict, key: str, real):
    def wrapper(first, *rest):
        calls[key] = first
        return real(first, *rest)

    return wrapper


def test_mixmatch_ramp_advances_within_the_epoch(monkeypatch):
    """Batch i of n in epoch t ramps lambda_u at t + i / n (DivideMix's linear_rampup)."""
    ctx = context([ConstNet([1.0, 0.0]), ConstNet([0.0, 1.0])], batch_size=1)
    seen = []
    real = mm.linear_rampup
    monkeypatch.setattr(mm, "linear_rampup", lambda t, n: seen.append((t, n)) or real(t, n))
    p = MixMatchParams(rampup_epochs=16)
    steps.mixmatch_pass(ctx, 0, peer_view(), p, epoch=8, where="test")
    assert seen == [(8.0, 16), (8.5, 16)]


def test_mixmatch_and_fixmatch_add_the_l1_regulariser():
    for kind in ("mixmatch", "fixmatch"):
        plain, regular = (
            trained_context(lr=0.0, batch_size=4),
            trained_context(lr=0.0, batch_size=4),
        )
        regular.l1 = 0.1
        base, with_l1 = run(kind, plain)["loss"], run(kind, regular)["loss"]
        l1 = 0.1 * torch.tensor(W_A).abs().sum().item()
        assert with_l1 == pytest.approx(base + l1, rel=1e-5), kind


def test_coteaching_steps_each_network_down_its_own_loss_with_regularisers():
    """One batch, SGD lr 0.1: each network moves by -lr x the gradient of its own (peer-selected,
    regularised) loss; the pass reports both losses and the kept fraction."""
    ctx = trained_context(batch_size=4)
    ctx.hflip, ctx.shift = False, 0
    ctx.penalty, ctx.l1 = 0.5, 0.01
    na0, nb0 = copy.deepcopy(ctx.state.nets[0]), copy.deepcopy(ctx.state.nets[1])
    stats = run("coteaching", ctx)
    x = ctx.data.batch(torch.arange(4))
    with torch.no_grad():
        la, lb = L.ce(na0(x), TARGETS), L.ce(nb0(x), TARGETS)
    expected = {}
    for name, net, logits_of, kept in (
        ("net1", na0, lambda: na0(x), torch.argsort(lb)[:2]),  # a learns from b's small losses
        ("net2", nb0, lambda: nb0(x), torch.argsort(la)[:2]),
    ):
        logits = logits_of()
        loss = L.ce(logits[kept], TARGETS[kept]).mean()
        loss = loss + 0.5 * L.neg_entropy(logits) + 0.01 * L.l1_penalty(net)
        loss.backward()
        expected[name] = (float(loss.detach()), net.head.weight - 0.1 * net.head.weight.grad)
    assert stats["loss_net1"] == pytest.approx(expected["net1"][0], rel=1e-5)
    assert stats["loss_net2"] == pytest.approx(expected["net2"][0], rel=1e-5)
    assert stats["kept_frac"] == 0.5
    assert_close(ctx.state.nets[0].head.weight, expected["net1"][1])
    assert_close(ctx.state.nets[1].head.weight, expected["net2"][1])


def test_supervised_pass_records_each_batchs_plain_logits_and_defaults_to_unit_weights():
    ctx = trained_context(batch_size=2, lr=0.0)
    ctx.hflip, ctx.shift = False, 0
    seen = []
    stats = steps.supervised_pass(
        ctx,
        1,
        ctx.data.all_indices(),
        targets=steps.soft_targets(ctx),
        record=lambda k, idx, logits: seen.append((k, idx.clone(), logits)),
        where="test",
    )
    net = ctx.state.nets[1]
    assert [k for k, _, _ in seen] == [1, 1]
    assert sorted(torch.cat([idx for _, idx, _ in seen]).tolist()) == [0, 1, 2, 3]
    losses = []
    for _, idx, logits in seen:
        x = ctx.data.batch(idx)
        assert_close(logits, net(x).detach())
        losses.append(L.ce(net(x), TARGETS[idx]).mean().detach())
    assert stats["loss"] == pytest.approx(float(sum(losses) / 2), rel=1e-5)


def test_soft_targets_take_the_labels_given():
    ctx = context([ConstNet([0.0, 0.0])])
    pseudo = torch.tensor([1, 0, 1, 1])
    assert_close(steps.soft_targets(ctx, pseudo)(torch.tensor([0, 1])), torch.eye(2)[[1, 0]])
    assert_close(steps.soft_targets(ctx)(torch.tensor([0, 1])), torch.eye(2)[[0, 1]])


def all_labelled_split() -> Division:
    """Every sample labelled (nothing left for the unlabelled term), weights 1, 0.5, 0.25, 2."""
    prob = np.ones((1, 4))
    return Division(prob, prob > 0.5, np.array([[1.0, 0.5, 0.25, 2.0]]), prob, ({},))


def pixels(rows) -> torch.Tensor:
    """By hand: PixelNet's input for IMAGES[rows], (n, C*H*W) in [0, 1]."""
    return torch.tensor(IMAGES[rows], dtype=torch.float32).permute(0, 3, 1, 2).flatten(1) / 255.0


def test_fixmatch_without_unlabelled_samples_is_weighted_supervised_training():
    ctx = trained_context(batch_size=4, lr=0.0)
    ctx.hflip, ctx.shift = False, 0
    ctx.penalty = 0.5
    division = all_labelled_split()
    calls = []
    stats = steps.fixmatch_pass(
        ctx,
        0,
        division,
        FixMatchParams(prior_weight=0.0),
        strong=lambda *a, **kw: calls.append("strong"),
        unlabelled_loss=lambda *a: calls.append("u"),
        where="test",
    )
    assert calls == []
    net, x = ctx.state.nets[0], ctx.data.batch(torch.arange(4))
    logits = net(x)
    expected = (torch.tensor(division.weight[0]).float() * L.ce(logits, TARGETS)).mean()
    expected = expected + 0.5 * L.neg_entropy(logits)  # the reported loss is the one optimised
    assert stats["loss"] == pytest.approx(expected.item(), rel=1e-5)


def test_fixmatch_passes_its_strong_augmentation_settings_and_reports_its_terms():
    ctx = trained_context(batch_size=2, lr=0.0)
    p = FixMatchParams(
        threshold=0.0, mu=1, strong_ops=3, strong_magnitude=0.7, lambda_u=2.0, prior_weight=0.0
    )
    seen = {}

    def strong(x, *, ops, magnitude, generator):
        seen["args"] = (ops, magnitude, generator)
        return x

    stats = steps.fixmatch_pass(
        ctx,
        0,
        half_labelled(),
        p,
        strong=strong,
        unlabelled_loss=lambda w, s, thr: (torch.tensor(0.5), torch.tensor([1.0, 0.0])),
        where="test",
    )
    assert seen["args"] == (3, 0.7, ctx.state.random.gen)
    assert stats["loss_u"] == 0.5 and stats["mask"] == 0.5
    assert stats["loss"] == pytest.approx(stats["loss_x"] + 2.0 * 0.5, rel=1e-6)


def fixmatch_with(ctx, division: Division, p: FixMatchParams, strong=None, loss_u: float = 0.0):
    """fixmatch_pass for network 0 with a given strong view (identity unless given) and an
    unlabelled loss fixed at `loss_u` with every pseudo-label kept."""
    return steps.fixmatch_pass(
        ctx,
        0,
        division,
        p,
        strong=strong or (lambda x, **kw: x),
        unlabelled_loss=lambda w, s, thr: (torch.tensor(loss_u), torch.ones(len(w))),
        where="test",
    )


def uniform_kl(logits: torch.Tensor) -> torch.Tensor:
    """By hand: KL(uniform || mean softmax) = mean_k(log(1/K) - log pbar_k)."""
    pbar = F.softmax(logits, 1).mean(0)
    return (torch.log(torch.tensor(1.0 / K)) - pbar.log()).mean()


def low_confidence_split() -> Division:
    """Samples 0 and 2 labelled, with clean probabilities near 0.5 (so the prediction counts)."""
    prob = np.array([[0.6, 0.2, 0.55, 0.1]])
    return Division(prob, prob > 0.5, np.array([[1.0, 0.5, 0.25, 1.0]]), prob, ({},))


def fixmatch_co_refine_loss(weight: torch.Tensor, detach: bool) -> torch.Tensor:
    """By hand: labelled samples 0 and 2 of low_confidence_split() (clean 0.6, 0.55; weights 1,
    0.25; both label 0), target sharpen(w*y + (1-w)*p, T = 1/3) = m^3 / sum(m^3)."""
    logits = pixels([0, 2]) @ weight.T
    p = F.softmax(logits, 1)
    p = p.detach() if detach else p
    w = torch.tensor([[0.6], [0.55]])
    m = w * torch.tensor([[1.0, 0.0], [1.0, 0.0]]) + (1 - w) * p
    t = m**3 / (m**3).sum(1, keepdim=True)
    return (torch.tensor([1.0, 0.25]) * -(t * F.log_softmax(logits, 1)).sum(1)).mean()


def test_fixmatch_co_refine_trains_the_labelled_view_on_the_detached_refined_target():
    big = (50 * torch.tensor(W_A)).tolist()  # confident predictions
    ctx = context([PixelNet(big), PixelNet(W_B)], batch_size=2)  # shift 0, no flip
    net = ctx.state.nets[0]
    ctx.state.optimizers[0] = torch.optim.SGD(net.parameters(), lr=0.5)
    p = FixMatchParams(threshold=0.0, mu=1, co_refine=True, temperature=1 / 3, prior_weight=0.0)
    stats = fixmatch_with(ctx, low_confidence_split(), p)
    assert stats["loss_x"] == pytest.approx(fixmatch_co_refine_loss(torch.tensor(big), True).item())
    grads = []
    for detach in (True, False):
        w = torch.tensor(big, requires_grad=True)
        fixmatch_co_refine_loss(w, detach).backward()
        grads.append(w.grad)
    assert_close(net.head.weight.detach(), torch.tensor(big) - 0.5 * grads[0])
    assert (grads[0] - grads[1]).abs().max() > 1e-4  # a target left in the graph would differ
    plain = context([PixelNet(big), PixelNet(W_B)], batch_size=2)
    off = fixmatch_with(
        plain, low_confidence_split(), FixMatchParams(threshold=0.0, mu=1, temperature=1 / 3)
    )
    assert off["loss_x"] != pytest.approx(stats["loss_x"], rel=1e-3)  # off: the given label


def test_fixmatch_prior_weight_adds_the_uniform_prior_over_every_view():
    """loss = L_x + lambda_u L_u + w * mean_k(log(1/K) - log pbar_k), pbar the mean softmax over
    the labelled, weak and strong rows of the step's one forward."""
    net = PixelNet([[1.0, -0.5, 1.5, 0.0], [-0.5, 1.0, 0.0, 0.5]])
    seen = {}

    def strong(x, **kw):
        seen["u"] = x.clone()
        return 1.0 - x

    stats = []
    for w in (0.0, 0.7):
        ctx = context([net, PixelNet(W_B)], batch_size=2)  # lr 0: the net stays as it is
        p = FixMatchParams(threshold=0.0, mu=1, lambda_u=2.0, prior_weight=w)
        stats.append(fixmatch_with(ctx, peer_view(), p, strong=strong, loss_u=0.25))
    u = seen["u"]
    x = ctx.data.batch(torch.tensor([0, 1]))
    kl = uniform_kl(torch.cat([net(x), net(u), net(1.0 - u)]))
    assert kl.item() > 1e-3
    off, on = stats
    assert off["loss"] == pytest.approx(off["loss_x"] + 2.0 * 0.25, rel=1e-6)
    assert on["loss"] == pytest.approx(on["loss_x"] + 2.0 * 0.25 + 0.7 * kl.item(), rel=1e-6)


def test_fixmatch_prior_weight_also_acts_when_every_sample_is_labelled():
    """No unlabelled set: one SGD step on mean(weight * CE) + 0.7 KL(uniform || pbar)."""
    start = [[1.0, -0.5, 1.5, 0.0], [-0.5, 1.0, 0.0, 0.5]]
    ctx = context([PixelNet(start), PixelNet(W_B)], batch_size=4)
    net = ctx.state.nets[0]
    ctx.state.optimizers[0] = torch.optim.SGD(net.parameters(), lr=0.5)
    division = all_labelled_split()
    fixmatch_with(ctx, division, FixMatchParams(prior_weight=0.7))
    w = torch.tensor(start, requires_grad=True)
    logits = pixels(slice(None)) @ w.T
    ce = torch.tensor(division.weight[0]).float() * L.ce(logits, TARGETS)
    (ce.mean() + 0.7 * uniform_kl(logits)).backward()
    assert_close(net.head.weight.detach(), torch.tensor(start) - 0.5 * w.grad)


# ------------------------------------------------------------------------- selection values


def test_no_selection_labels_every_sample_with_weight_one_and_keeps_the_losses():
    from noisyflow.methods.selection.base import NoSelection, SelectionInputs

    labels = np.array([0, 1, 1, 0, 1])
    losses = np.arange(10.0).reshape(2, 5)
    div = NoSelection(None, seed=0).divide(SelectionInputs(labels, K, losses=losses), 2)
    assert div.clean_prob.shape == (2, 5) and (div.clean_prob == 1).all()
    assert div.labelled.dtype == bool and div.labelled.all()
    assert (div.weight == 1).all() and div.weight.shape == (2, 5)
    assert div.loss is losses and div.fits == ({}, {})
    empty = NoSelection(None, seed=0).divide(SelectionInputs(labels, K), 1)
    assert empty.loss.shape == (1, 5) and np.isnan(empty.loss).all() and empty.fits == ({},)


def test_gmm_division_fits_each_network_and_labels_strictly_above_the_threshold(monkeypatch):
    from noisyflow.methods.selection import gmm

    losses = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    answers = {0.1: np.array([0.9, 0.5, 0.1]), 0.4: np.array([0.2, 0.5001, 1.0])}
    seen = []

    def fake_fit(x, p):
        seen.append((x.copy(), p))
        return answers[float(x[0])], {"net": len(seen)}

    monkeypatch.setattr(gmm, "fit_clean_probability", fake_fit)
    p = gmm.GMMParams(p_threshold=0.5)
    div = gmm.GMMSelection(p, seed=0).divide(gmm.SelectionInputs(np.zeros(3), K, losses), 2)
    assert [s[0].tolist() for s in seen] == losses.tolist() and all(s[1] is p for s in seen)
    assert div.labelled.tolist() == [[True, False, False], [False, True, True]]  # 0.5 is not > 0.5
    assert_close(torch.as_tensor(div.clean_prob), torch.as_tensor(np.stack(list(answers.values()))))
    assert (div.weight == 1).all() and div.weight.shape == (2, 3)
    assert div.fits == ({"net": 1}, {"net": 2})
    assert np.array_equal(div.loss, losses) and div.loss is not losses


def test_gmm_fit_sees_min_max_normalised_losses_and_every_em_setting(monkeypatch):
    from noisyflow.methods.selection import gmm

    seen = {}
    real = gmm.fit_gmm1d

    def spy(x, **kw):
        seen.update(x=x.clone(), **kw)
        return real(x, **kw)

    monkeypatch.setattr(gmm, "fit_gmm1d", spy)
    losses = np.array([3.0, 5.0, 4.0, 9.0, 3.5, 8.0])
    gmm.fit_clean_probability(losses, gmm.GMMParams(max_iter=7, tol=0.003, reg_covar=0.02))
    assert_close(seen["x"], torch.tensor((losses - 3.0) / 6.0, dtype=seen["x"].dtype))
    assert (seen["max_iter"], seen["tol"], seen["reg_covar"]) == (7, 0.003, 0.02)


def test_curriculum_opens_its_subsets_one_third_of_training_at_a_time():
    from noisyflow.methods.selection.curriculum import CurriculumParams, CurriculumSelection

    subset = np.array([0, 1, 2, 0, 1, 2])
    prob = np.full((1, 6), 0.7)
    labelled = np.array([[True, True, True, True, True, False]])
    weight = np.array([[1.0, 0.5, 0.5, 1.0, 0.5, 0.5]])
    div = Division(prob, labelled, weight, prob, ({"subset": subset},))
    sel = CurriculumSelection(CurriculumParams(), seed=0)
    opened = {e: sel.at_epoch(div, e, 9).labelled[0].tolist() for e in range(9)}
    first = [True, False, False, True, False, False]
    second = [True, True, False, True, True, False]
    every = [True, True, True, True, True, False]  # never labels what the division did not
    assert [opened[e] for e in range(9)] == [first] * 3 + [second] * 3 + [every] * 3
    assert sel.at_epoch(div, 1, 2).labelled[0].tolist() == second  # 3 * 1 // 2 = 1
    late = sel.at_epoch(div, 7, 1)
    assert late.labelled[0].tolist() == every
    assert late.clean_prob is prob and late.weight is weight and late.loss is prob
    assert late.fits == div.fits


def test_aum_from_warmup_margins_counts_epochs_from_start_epoch():
    from noisyflow.methods.selection.aum import AUMParams, AUMSelection
    from noisyflow.methods.selection.base import SelectionInputs

    n = 8
    epoch_sum = np.zeros((1, 3, n))
    epoch_sum[0, 0] = 100.0  # epoch 0: ignored with start_epoch 1
    epoch_sum[0, 1] = [2.0, 1.0, -1.0, 0.5, 3.0, -2.0, -0.5, 0.0]
    epoch_sum[0, 2] = [2.0, 3.0, -3.0, 0.5, 1.0, -2.0, -1.5, -1.0]
    seen = np.ones((1, 3, n))
    seen[0, 2, 4], epoch_sum[0, 2, 4] = 0, 0.0  # sample 4 missed epoch 2: mean of what was seen
    threshold = np.zeros((1, n), bool)
    threshold[0, [6, 7]] = True
    stats = {"aum_epoch_sum": epoch_sum, "aum_epoch_seen": seen, "aum_threshold": threshold}
    sel = AUMSelection(AUMParams(percentile=50.0, start_epoch=1), seed=0)
    div = sel.divide(SelectionInputs(np.zeros(n, int), K, stats=stats), 1)
    aum = np.array([2.0, 2.0, -2.0, 0.5, 3.0, -2.0])
    assert_close(torch.as_tensor(div.loss[0, :6]), torch.as_tensor(-aum, dtype=torch.float64))
    assert np.isnan(div.loss[0, 6:]).all()  # threshold samples carry no AUM of their own
    cut = np.quantile([-1.0, -0.5], 0.5)  # the threshold samples' AUMs: -1.0 and -0.5
    assert div.fits[0]["threshold"] == pytest.approx(cut)
    assert div.labelled[0, :6].tolist() == [True, True, False, True, True, False]


# ------------------------------------------------------------------------ correction values


def _reference_prototypes(features, num, density_quantile, max_similarity):
    """Han et al.'s prototype selection restated sample by sample."""
    f = features / np.linalg.norm(features, axis=1, keepdims=True)
    sim = f @ f.T
    m = len(f)
    s_c = np.quantile(sim.flatten(), 1.0 - density_quantile)
    rho = [sum(np.sign(sim[i, j] - s_c) for j in range(m)) for i in range(m)]
    eta = []
    for i in range(m):
        denser = [j for j in range(m) if rho[j] > rho[i]]
        eta.append(max(sim[i, j] for j in denser) if denser else min(sim[i]))
    order = sorted(range(m), key=lambda i: (-rho[i], i))  # densest first, ties by index
    median = sorted(rho)[(m - 1) // 2]  # torch's median: the lower middle value
    keep = [i for i in order if rho[i] >= median and eta[i] < max_similarity][:num]
    return keep or order[:1]


@pytest.mark.parametrize("num,quantile,max_sim", [(3, 0.4, 0.95), (5, 0.3, 0.99), (2, 0.6, 0.9)])
def test_prototype_selection_is_han_et_al_rule(num, quantile, max_sim):
    from noisyflow.methods.correction.prototypes import select_prototypes

    rng = np.random.default_rng(num)
    centre = rng.normal(size=6)
    features = centre + 0.4 * rng.normal(size=(30, 6))
    features[10] = features[3]  # duplicates: ties in density
    features[20] = features[3]
    features = features.astype(np.float32)
    got = select_prototypes(
        torch.from_numpy(features), num=num, density_quantile=quantile, max_similarity=max_sim
    )
    assert got.tolist() == _reference_prototypes(
        features.astype(np.float64), num, quantile, max_sim
    )


def test_prototype_selection_defaults_and_fallback():
    from noisyflow.methods.correction.prototypes import select_prototypes

    features = torch.from_numpy(np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32))
    assert_close(
        select_prototypes(features, num=4),
        select_prototypes(features, num=4, density_quantile=0.4, max_similarity=0.95),
    )
    same = torch.ones(5, 3)  # one point five times: every eta is 1, nothing passes the rule
    assert select_prototypes(same, num=3).tolist() == [0]


# ------------------------------------------------------------------- small pieces at their edges


def test_edges_of_the_small_pieces():
    from noisyflow.methods.selection.aum import aum_clean_prob
    from noisyflow.methods.selection.coteaching import (
        loss_rank_probability,
        num_kept,
        small_loss_keep,
    )

    # co-teaching: one sample is kept from a batch of one; fractions above 1 are refused;
    # two samples rank 1 and 0; equal losses keep the earlier sample
    assert num_kept(1, 0.1) == 1 and num_kept(0, 0.5) == 0
    with pytest.raises(ValueError, match="keep_fraction must be in"):
        num_kept(4, 1.5)
    assert loss_rank_probability(torch.tensor([0.3, 0.1])).tolist() == [0.0, 1.0]
    tied = torch.tensor([0.2, 0.1, 0.2, 0.2, 0.1, 0.2])
    assert small_loss_keep(tied, 0.5).tolist() == [True, True, False, False, True, False]
    assert loss_rank_probability(tied).tolist() == pytest.approx([0.6, 1.0, 0.4, 0.2, 0.8, 0.0])
    # MixMatch: a one-epoch ramp is halfway at half an epoch; sharpening normalises each row
    assert mm.linear_rampup(0.5, 1) == 0.5
    p = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    s = mm.sharpen(p, 0.5)
    assert_close(s, p**2 / (p**2).sum(1, keepdim=True))
    # AUM: flagged below the percentile of the threshold samples (linear interpolation)
    ref = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    aum = torch.tensor([1.99, 2.0, -1.0, 5.0], dtype=torch.float64)
    prob, flagged, _ = aum_clean_prob(aum, ref, 50.0)
    assert flagged.tolist() == [True, False, True, False]
    assert prob.tolist() == pytest.approx([0.4, 0.4, 0.0, 1.0])  # share of ref below, "left"
    assert aum_clean_prob(aum, ref)[1].tolist() == (aum < 3.96).tolist()  # default: 99th


def test_geometric_maps_and_their_resampling():
    """Each op's pixel-space map, and what affine() does with it: a translation by 2 pixels
    moves the image by 2 pixels (grey coming in), a 90-degree rotation turns it, and cutout
    greys exactly its square."""
    from noisyflow.methods.ssl import fixmatch as fm

    v = torch.tensor([0.5, -1.0], dtype=torch.float64)
    a = v * fm.MAX_DEGREES * np.pi / 180
    rot = fm.geometric_matrix("rotate", v, 8, 10)
    assert_close(
        rot[:, :2, :2],
        torch.stack([torch.cos(a), -torch.sin(a), torch.sin(a), torch.cos(a)], 1).view(2, 2, 2),
    )
    assert_close(rot[:, 2], torch.tensor([[0.0, 0.0, 1.0]] * 2, dtype=torch.float64))
    eye = torch.eye(3, dtype=torch.float64)
    for op, cell, scale in (
        ("shear_x", (0, 1), fm.MAX_SHEAR),
        ("shear_y", (1, 0), fm.MAX_SHEAR),
        ("translate_x", (0, 2), fm.MAX_TRANSLATE * 10),
        ("translate_y", (1, 2), fm.MAX_TRANSLATE * 8),
    ):
        m = fm.geometric_matrix(op, v, 8, 10)
        expected = eye.repeat(2, 1, 1)
        expected[:, cell[0], cell[1]] = v * scale
        assert_close(m, expected, msg=op)
    x = torch.arange(16.0).view(1, 1, 4, 4) / 16
    shift = torch.eye(3).repeat(1, 1, 1)
    shift[0, 0, 2] = 2.0  # output pixel (r, c) reads input (r, c + 2)
    moved = fm.affine(x, shift)
    assert_close(moved[0, 0, :, :2], x[0, 0, :, 2:])
    assert_close(moved[0, 0, :, 2:], torch.full((4, 2), fm.FILL))
    quarter = fm.geometric_matrix("rotate", torch.tensor([90.0 / fm.MAX_DEGREES]), 4, 4)
    assert_close(fm.affine(x, quarter)[0, 0], torch.rot90(x[0, 0], 1), atol=1e-5, rtol=0)
    cut = fm.cutout(torch.zeros(1, 1, 4, 4), 2, torch.tensor([[1, 3]]))
    assert cut[0, 0].nonzero().tolist() == [[1, 3], [2, 3]]


@pytest.mark.parametrize("kind", ["mixmatch", "fixmatch"])
@pytest.mark.parametrize(("epoch_steps", "expected"), [("labelled", 2), ("all", 4)])
def test_an_ssl_epoch_is_a_labelled_pass_or_a_supervised_epochs_steps(kind, epoch_steps, expected):
    """4 samples, 2 labelled (0 and 2), batch 1: `labelled` takes one step per labelled sample,
    `all` takes ceil(4 / 1) = 4 steps, every one on labelled samples, each seen twice."""
    ctx = trained_context(batch_size=1)
    ctx.epoch_steps = epoch_steps
    seen: list[int] = []
    onehot = ctx.onehot

    def spy(idx, labels=None):
        if labels is None:
            seen.extend(idx.tolist())
        return onehot(idx, labels)

    ctx.onehot = spy
    counts = []
    ctx.state.optimizers[0].register_step_post_hook(lambda *a: counts.append(1))
    run(kind, ctx)
    assert len(counts) == expected
    assert sorted(set(seen)) == [0, 2]
    assert sorted(seen) == sorted([0, 2] * (expected // 2))
