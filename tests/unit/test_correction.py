"""Label correction: Han et al.'s prototypes and the conservative decision rule (`decide`).

The decision is pinned by values: which samples are flagged, which labels change, and the
label quality, for hand-computed evidence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import noisyflow.config  # noqa: F401  (imported first: config <-> methods import cycle)
from noisyflow.config import CorrectParams
from noisyflow.methods.correction import CORRECTIONS, PrototypeParams
from noisyflow.methods.correction.decide import (
    Evidence,
    decide,
    implausible_changes,
    noise_aware_posterior,
    transition_estimate,
)
from noisyflow.methods.correction.prototypes import (
    class_prototypes,
    prototype_similarity,
    select_prototypes,
    similarity_to_prototypes,
)


def blobs(n_per=60, seed=0):
    """Three well-separated clusters in 8-D, labels 0..2."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.eye(8)[:3] * 5
    feats = torch.cat([c + 0.5 * torch.randn(n_per, 8, generator=g) for c in centers])
    return feats, np.repeat(np.arange(3), n_per)


# ----------------------------------------------------------------------------- prototypes


def test_prototypes_are_dense_members_of_their_cluster():
    feats, labels = blobs()
    cls = feats[labels == 1]
    idx = select_prototypes(cls, num=4)
    assert 1 <= len(idx) <= 4 and len(set(idx.tolist())) == len(idx)
    proto = F.normalize(cls[idx], dim=1)
    center = F.normalize(cls.mean(0, keepdim=True), dim=1)
    assert (proto @ center.T).min() > 0.9


def test_two_mode_class_gets_prototypes_in_both_modes():
    g = torch.Generator().manual_seed(1)
    a = torch.tensor([5.0, 0, 0, 0]) + 0.2 * torch.randn(40, 4, generator=g)
    b = torch.tensor([0, 5.0, 0, 0]) + 0.2 * torch.randn(40, 4, generator=g)
    idx = select_prototypes(torch.cat([a, b]), num=6)
    assert (idx < 40).any() and (idx >= 40).any()


def test_prototypes_are_mutually_less_similar_than_max_similarity():
    feats, labels = blobs()
    cls = feats[labels == 0]
    idx = select_prototypes(cls, num=8, max_similarity=0.99)
    f = F.normalize(cls[idx], dim=1)
    sim = f @ f.T
    off_diagonal = sim[~torch.eye(len(idx), dtype=torch.bool)]
    assert len(idx) >= 2 and (off_diagonal < 0.99).all()


def test_prototype_similarity_is_the_mean_cosine_to_each_class():
    feats = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    protos = [torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])]
    sim = prototype_similarity(feats, protos)
    r = 2**-0.5
    expected = torch.tensor([[1.0, 0.5], [0.0, 0.5], [r, r]])
    torch.testing.assert_close(sim, expected)


def test_prototype_similarity_recovers_true_cluster_of_mislabelled_points():
    feats, true = blobs()
    noisy = true.copy()
    noisy[::10] = (noisy[::10] + 1) % 3  # 10% wrong labels
    protos = class_prototypes(
        feats,
        noisy,
        np.ones(len(noisy), bool),
        3,
        num=3,
        samples_per_class=100,
        density_quantile=0.4,
        max_similarity=0.95,
        rng=np.random.default_rng(0),
    )
    sim = prototype_similarity(feats, protos)
    assert sim.shape == (len(true), 3)
    assert (sim.argmax(1).numpy() == true).mean() > 0.95


def test_class_prototypes_come_from_the_candidates_of_each_class():
    feats, labels = blobs(n_per=20)
    candidates = np.zeros(len(labels), bool)
    candidates[[0, 1, 2, 25, 26, 45]] = True  # class 2 has a single candidate
    protos = class_prototypes(
        feats,
        labels,
        candidates,
        4,  # class 3 has no sample at all
        num=8,
        samples_per_class=100,
        density_quantile=0.4,
        max_similarity=0.95,
        rng=np.random.default_rng(0),
    )
    pools = [feats[[0, 1, 2]], feats[[25, 26]], feats[[45]]]
    for c, pool in enumerate(pools):
        # every prototype of class c is one of that class's candidates' features
        assert ((protos[c][:, None, :] == pool[None]).all(-1).any(1)).all(), c
    assert torch.equal(protos[3], torch.zeros(1, 8))


def test_class_without_candidates_falls_back_to_all_its_samples():
    feats, labels = blobs(n_per=20)
    candidates = labels != 1
    protos = class_prototypes(
        feats,
        labels,
        candidates,
        3,
        num=2,
        samples_per_class=100,
        density_quantile=0.4,
        max_similarity=0.95,
        rng=np.random.default_rng(0),
    )
    own = feats[labels == 1]
    assert ((protos[1][:, None, :] == own[None]).all(-1).any(1)).all()


def test_similarity_to_prototypes_uses_the_params():
    feats, labels = blobs()
    p = PrototypeParams(prototypes=2, samples_per_class=30, density_quantile=0.3)
    sim = similarity_to_prototypes(
        feats, labels, np.ones(len(labels), bool), 3, p, np.random.default_rng(4)
    )
    protos = class_prototypes(
        feats,
        labels,
        np.ones(len(labels), bool),
        3,
        num=2,
        samples_per_class=30,
        density_quantile=0.3,
        max_similarity=p.max_similarity,
        rng=np.random.default_rng(4),
    )
    torch.testing.assert_close(sim, prototype_similarity(feats, protos))


# ----------------------------------------------------------------------------- decide


def one_net(*rows):
    """(M=1, N, K) network probabilities."""
    return np.array([rows], dtype=np.float64)


def two_nets(*rows):
    """(M=2, N, K): two networks with the same probabilities (the agreement is given)."""
    return np.repeat(one_net(*rows), 2, axis=0)


def decide_voted(labels, net_probs, clean_prob, p):
    """`decide` with a prototype vote that picks the networks' mean argmax and has no weight in
    the blend: the vote the rule requires, so each test's figures are the networks' alone."""
    return decide(labels, net_probs, net_probs.mean(axis=0), clean_prob, p, prototype_weight=0.0)


def rule(
    min_confidence=0.5,
    require_agreement=True,
    clean_margin=0.05,
    max_clean_prob=1.0,
    transition=False,
    plurality=False,
):
    """The `correct:` rule with the class-level gates off unless asked for: each test below
    isolates one per-sample gate on a handful of samples, too few for the plurality test's
    counts (it has tests of its own)."""
    return CorrectParams(
        min_confidence=min_confidence,
        require_agreement=require_agreement,
        clean_margin=clean_margin,
        max_clean_prob=max_clean_prob,
        transition=transition,
        plurality=plurality,
    )


def test_clear_disagreement_is_flagged_and_changed_even_when_called_clean():
    labels = np.array([0, 0])
    out = decide_voted(labels, two_nets([0.9, 0.1], [0.1, 0.9]), np.array([0.9, 1.0]), rule())
    assert out.is_label_issue.tolist() == [False, True]
    assert out.corrected_label.tolist() == [0, 1]
    assert out.prototype_label.tolist() == [0, 1]  # the vote, argmax of the similarities
    # quality = q[given] / sum(q), q = pred + margin * clean * onehot(given)
    q0 = np.array([0.9 + 0.05 * 0.9, 0.1])
    q1 = np.array([0.1 + 0.05 * 1.0, 0.9])
    assert out.label_quality == pytest.approx([q0[0] / q0.sum(), q1[0] / q1.sum()])
    assert out.corrected_label.dtype == np.int64 and out.is_label_issue.dtype == bool


def test_flagged_sample_with_weak_evidence_keeps_its_label():
    labels = np.array([0])
    probs = two_nets([0.3, 0.45, 0.25])  # prefers class 1, but below min_confidence 0.5
    out = decide_voted(labels, probs, np.array([0.0]), rule())
    assert out.is_label_issue.tolist() == [True]
    assert out.corrected_label.tolist() == [0]
    assert out.label_quality == pytest.approx([0.3])
    # the same evidence changes the label once the bar is lowered to it
    low = decide_voted(labels, probs, np.array([0.0]), rule(min_confidence=0.45))
    assert low.corrected_label.tolist() == [1] and low.is_label_issue.tolist() == [True]


def test_two_networks_agreeing_with_confidence_change_the_label():
    labels = np.array([0, 0])
    probs = np.array(
        [
            [[0.2, 0.8], [0.3, 0.7]],  # network 1
            [[0.4, 0.6], [0.6, 0.4]],  # network 2 agrees on sample 0 only
        ]
    )
    out = decide_voted(labels, probs, np.zeros(2), rule())
    # sample 1: mean [0.45, 0.55] prefers 1 with confidence, but network 2 says 0
    assert out.is_label_issue.tolist() == [True, True]
    assert out.corrected_label.tolist() == [1, 0]
    assert out.label_quality == pytest.approx([0.3, 0.45])


def test_without_require_agreement_confidence_alone_changes_the_label():
    labels = np.array([0, 0])
    probs = np.array([[[0.2, 0.8], [0.3, 0.7]], [[0.4, 0.6], [0.6, 0.4]]])
    out = decide(labels, probs, None, np.zeros(2), rule(require_agreement=False))
    assert out.corrected_label.tolist() == [1, 1]
    # ... but never below min_confidence
    weak = decide(
        labels, probs, None, np.zeros(2), rule(require_agreement=False, min_confidence=0.6)
    )
    assert weak.corrected_label.tolist() == [1, 0] and weak.is_label_issue.tolist() == [True, True]


@pytest.mark.parametrize("nets", [one_net, two_nets])
def test_networks_without_a_prototype_vote_flag_but_change_nothing(nets):
    """Agreement needs the prototype vote: the networks' own confident errors (a class one never
    predicts, CIFAR asym-40 with GCE; a confusion two learned from pairwise noise, co-teaching)
    look exactly like noise, so alone they only flag (`correction: none`)."""
    labels = np.array([0, 0])
    probs = nets([0.9, 0.1], [0.05, 0.95])
    out = decide(labels, probs, None, np.zeros(2), rule())
    assert out.is_label_issue.tolist() == [False, True]
    assert out.corrected_label.tolist() == [0, 0]
    assert out.prototype_label.tolist() == [-1, -1]  # no prototypes used
    # an agreeing prototype vote, or dropping the requirement, changes it
    with_protos = decide(labels, probs, np.array([[0.9, 0.1], [0.1, 0.9]]), np.zeros(2), rule())
    assert with_protos.corrected_label.tolist() == [0, 1]
    free = decide(labels, probs, None, np.zeros(2), rule(require_agreement=False))
    assert free.corrected_label.tolist() == [0, 1]


def test_prototype_vote_can_overrule_the_networks():
    labels = np.array([0])
    probs = one_net([0.6, 0.4])
    proto_sim = np.array([[0.1, 0.9]])
    kw = {"prototype_weight": 0.8, "prototype_temperature": 0.1}
    vote = np.exp([1.0, 9.0]) / np.exp([1.0, 9.0]).sum()  # softmax(sim / 0.1)
    pred = 0.2 * np.array([0.6, 0.4]) + 0.8 * vote
    free = decide(labels, probs, proto_sim, np.array([0.0]), rule(require_agreement=False), **kw)
    assert free.is_label_issue.tolist() == [True]
    assert free.corrected_label.tolist() == [1] and free.prototype_label.tolist() == [1]
    assert free.label_quality == pytest.approx([pred[0]])
    # with require_agreement the network (argmax 0) must agree too: flagged, not changed
    strict = decide(labels, probs, proto_sim, np.array([0.0]), rule(), **kw)
    assert strict.is_label_issue.tolist() == [True] and strict.corrected_label.tolist() == [0]


def test_prototype_vote_vetoes_a_change_the_networks_agree_on():
    labels = np.array([0])
    probs = np.array([[[0.1, 0.9]], [[0.2, 0.8]]])
    proto_sim = np.array([[0.52, 0.5]])  # prototypes prefer the given class, weakly
    out = decide(labels, probs, proto_sim, np.array([0.0]), rule(), prototype_weight=0.5)
    vote = np.exp([5.2, 5.0]) / np.exp([5.2, 5.0]).sum()
    pred = 0.5 * np.array([0.15, 0.85]) + 0.5 * vote
    assert pred[1] > 0.5  # confident enough ...
    assert out.is_label_issue.tolist() == [True] and out.prototype_label.tolist() == [0]
    assert out.corrected_label.tolist() == [0]  # ... but the prototype vote disagrees
    assert out.label_quality == pytest.approx([pred[0]])


def test_prototype_weight_and_temperature_blend_the_evidence():
    labels = np.array([1])
    probs = one_net([0.7, 0.3])
    proto_sim = np.array([[0.2, 0.6]])
    for weight, temp in ((0.0, 0.1), (0.25, 0.5), (1.0, 2.0)):
        out = decide(
            labels,
            probs,
            proto_sim,
            np.array([0.0]),
            rule(),
            prototype_weight=weight,
            prototype_temperature=temp,
        )
        vote = np.exp(proto_sim[0] / temp) / np.exp(proto_sim[0] / temp).sum()
        pred = (1 - weight) * np.array([0.7, 0.3]) + weight * vote
        assert out.label_quality == pytest.approx([pred[1]]), (weight, temp)
        assert out.is_label_issue[0] == (pred[0] > pred[1])


def test_clean_margin_breaks_near_ties_only():
    labels = np.array([0, 0, 0])
    probs = two_nets([0.48, 0.52], [0.48, 0.52], [0.2, 0.8])
    clean = np.array([1.0, 0.0, 1.0])
    out = decide_voted(labels, probs, clean, rule(clean_margin=0.05))
    # a near tie keeps the given label when it is probably clean, not when it is probably noisy;
    # a clear disagreement is flagged whatever the clean probability
    assert out.is_label_issue.tolist() == [False, True, True]
    assert out.corrected_label.tolist() == [0, 1, 1]
    assert out.label_quality == pytest.approx([0.53 / 1.05, 0.48, 0.25 / 1.05])


def test_large_margin_trusts_the_clean_probability():
    labels, probs = np.array([0]), two_nets([0.2, 0.8])
    trusted = decide_voted(labels, probs, np.array([1.0]), rule(clean_margin=10))
    assert not trusted.is_label_issue[0] and trusted.corrected_label[0] == 0
    assert trusted.label_quality == pytest.approx([10.2 / 11.0])
    doubted = decide_voted(labels, probs, np.array([0.0]), rule(clean_margin=10))
    assert doubted.is_label_issue[0] and doubted.corrected_label[0] == 1


def test_a_label_the_split_trusts_is_flagged_but_kept():
    labels = np.array([0, 0, 0])
    probs = two_nets([0.1, 0.9], [0.1, 0.9], [0.1, 0.9])
    clean = np.array([0.5, 0.51, 0.0])
    out = decide_voted(labels, probs, clean, rule(max_clean_prob=0.5))
    assert out.is_label_issue.tolist() == [True, True, True]  # the evidence still says so
    assert out.corrected_label.tolist() == [1, 0, 1]  # changed only at clean_prob <= 0.5
    off = decide_voted(labels, probs, clean, rule(max_clean_prob=1.0))
    assert off.corrected_label.tolist() == [1, 1, 1]


def test_transition_counts_the_given_labels_of_each_class_anchors():
    pred = np.array(
        [[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.7, 0.1, 0.2], [0.6, 0.2, 0.2]]  # assigned 0
        + [[0.05, 0.0, 0.95], [0.1, 0.0, 0.9], [0.15, 0.0, 0.85], [0.2, 0.0, 0.8]]  # assigned 2
    )
    labels = np.array([0, 0, 2, 0, 2, 0, 2, 0])
    # anchors: pred_j at or above the median of the samples assigned to j -> the first two of each
    t = transition_estimate(pred, labels, quantile=0.5, prior=1.0)
    np.testing.assert_allclose(t[0], np.array([2 + 1, 1, 1]) / 5)  # labels 0, 0
    np.testing.assert_allclose(t[2], np.array([1 + 1, 1, 1 + 1]) / 5)  # labels 2, 0
    np.testing.assert_allclose(t[1], [1 / 3] * 3)  # no sample assigned 1: the prior alone
    bare = transition_estimate(pred, labels, quantile=0.0, prior=0.0)  # every assigned sample
    np.testing.assert_allclose(bare[0], [3 / 4, 0, 1 / 4])
    assert bare[1].tolist() == [0, 0, 0]


def test_noise_aware_posterior_is_bayes_rule():
    t = np.array([[0.6, 0.4, 0.0], [0.0, 1.0, 0.0], [0.1, 0.1, 0.8]])  # P(given | class)
    pred, labels = np.array([[0.2, 0.5, 0.3], [0.5, 0.0, 0.5]]), np.array([1, 0])
    post = noise_aware_posterior(pred, labels, t)
    np.testing.assert_allclose(post[0], np.array([0.08, 0.5, 0.03]) / 0.61)
    np.testing.assert_allclose(post[1], np.array([0.3, 0.0, 0.05]) / 0.35)


# Pairwise noise in miniature: 6 images of class 0, all labelled 0; 6 of class 2, half labelled 0
# (class 2 -> 0 is the noise); then two images the evidence doubts (0.7), one in each direction.
PAIRWISE_PRED = np.array(
    [[0.9, 0.05, 0.05]] * 6 + [[0.05, 0.05, 0.9]] * 6 + [[0.7, 0.0, 0.3], [0.3, 0.0, 0.7]]
)
PAIRWISE_LABELS = np.array([0] * 6 + [2, 2, 2, 0, 0, 0] + [2, 0])


def test_transition_keeps_a_label_the_noise_rarely_produces():
    clean = np.zeros(len(PAIRWISE_LABELS))
    probs = two_nets(*PAIRWISE_PRED)
    off = decide_voted(PAIRWISE_LABELS, probs, clean, rule(transition=False))
    on = decide_voted(PAIRWISE_LABELS, probs, clean, rule(transition=True))
    assert off.corrected_label[-2:].tolist() == [0, 2]  # 0.7 >= min_confidence, both networks
    # T (anchors = the 12 confident images, 2 pseudo-counts per cell): row 0 = [8, 2, 2] / 12,
    # row 2 = [5, 2, 5] / 12. Labelled 2, evidence 0: 0.7 x 2/12 = 0.117 for 0 < 0.3 x 5/12 =
    # 0.125 for 2: kept. Labelled 0, evidence 2: 0.7 x 5/12 = 0.29 for 2 > 0.3 x 8/12 = 0.2: changed.
    assert on.corrected_label[-2:].tolist() == [2, 2]
    assert on.is_label_issue[-2:].tolist() == [True, True]  # the gate decides changes, not flags
    assert (on.corrected_label[:-2] == off.corrected_label[:-2]).all()

    # min_confidence holds in the posterior too: 0.292 / (0.292 + 0.2) = 0.593 for the change
    def last(min_confidence):
        rule_ = rule(min_confidence, transition=True)
        return decide_voted(PAIRWISE_LABELS, probs, clean, rule_).corrected_label[-1]

    assert last(0.59) == 2
    assert last(0.6) == 0  # the networks' 0.7 reaches 0.6, the posterior does not


def test_implausible_changes_wants_the_evidence_to_respect_plurality():
    # given 0: evidence 1 for 9, 0 for 1 -> 0 -> 1 contradicts plurality; 0 -> 2 (1 vs 0) not
    # given 1: evidence 0 for 6, 1 for 4 -> 1 -> 0 blocked, though 6 - 4 < 2 sqrt(10) (the old
    #   rule of z = -2 let it through); 1 -> 2, 1 -> 3: 4 vs 0
    # given 2: evidence 2 for 9, 0 for 1 -> plausible up to z = 8 / sqrt(10) = 2.53
    # given 3: evidence 3 for 5, 0 for 5 -> a tie: plausible at z = 0, not at z = 1
    labels = np.array([0] * 10 + [1] * 10 + [2] * 10 + [3] * 10)
    evidence = np.array([1] * 9 + [0] + [0] * 6 + [1] * 4 + [2] * 9 + [0] + [3] * 5 + [0] * 5)
    out = implausible_changes(labels, evidence, 4)
    expected = np.zeros((4, 4), dtype=bool)
    expected[0, 1] = expected[1, 0] = True
    assert out.tolist() == expected.tolist()
    assert not implausible_changes(labels, evidence, 4, z=-2.0)[1, 0]  # 2 < 2 sqrt(10)
    assert implausible_changes(labels, evidence, 4, z=-2.0)[0, 1]  # 8 > 2 sqrt(10)
    assert implausible_changes(labels, evidence, 4, z=1.0)[3, 0]
    assert not implausible_changes(labels, evidence, 4, z=2.5)[2, 0]
    assert implausible_changes(labels, evidence, 4, z=2.6)[2, 0]
    assert not implausible_changes(labels, evidence, 4, z=5.0).diagonal().any()


def test_plurality_keeps_the_labels_of_a_class_the_networks_never_predict():
    """GCE at CIFAR asym-40: no truck is predicted, every given truck becomes automobile."""
    labels = np.array([0] * 6 + [1] * 6)  # class 1's samples all look like class 0
    probs = two_nets(*([[0.9, 0.1]] * 12))
    on = decide_voted(labels, probs, np.zeros(12), rule(plurality=True))
    off = decide_voted(labels, probs, np.zeros(12), rule())
    assert on.is_label_issue.tolist() == off.is_label_issue.tolist() == [False] * 6 + [True] * 6
    assert off.corrected_label.tolist() == [0] * 12
    assert on.corrected_label.tolist() == labels.tolist()


def test_plurality_blocks_changes_where_the_evidence_picks_the_new_class_more_often():
    """Networks that merged a class into another (FixMatch + self-learning, CIFAR asym-40 seed
    4: 77 given birds called frog, 70 bird) must not move the labels they cannot tell apart."""
    labels = np.array([0] * 6 + [1] * 6)
    # given 1: the evidence picks 0 for 4 and 1 for 2: no change
    merged = two_nets(*([[0.9, 0.1]] * 10 + [[0.1, 0.9]] * 2))
    out = decide_voted(labels, merged, np.zeros(12), rule(plurality=True))
    assert out.is_label_issue.tolist() == [False] * 6 + [True] * 4 + [False] * 2
    assert out.corrected_label.tolist() == labels.tolist()
    # 0 for 3 and 1 for 3, a tie: the change goes through
    tie = two_nets(*([[0.9, 0.1]] * 9 + [[0.1, 0.9]] * 3))
    out = decide_voted(labels, tie, np.zeros(12), rule(plurality=True))
    assert out.corrected_label.tolist() == [0] * 9 + [1] * 3


def test_zero_margin_ignores_the_clean_probability():
    labels, probs = np.array([0, 0]), one_net([0.48, 0.52], [0.48, 0.52])
    out = decide_voted(labels, probs, np.array([1.0, 0.0]), rule(clean_margin=0.0))
    assert out.is_label_issue.tolist() == [True, True]
    assert out.label_quality == pytest.approx([0.48, 0.48])


@pytest.mark.parametrize("with_prototypes", [True, False])
def test_saved_evidence_replays_the_same_decision(tmp_path, with_prototypes):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=(2, 12))
    ev = Evidence(
        rng.integers(0, 3, 12),
        probs,
        rng.normal(size=(12, 3)) if with_prototypes else None,
        rng.uniform(size=12),
        prototype_weight=0.3,
        prototype_temperature=0.2,
    )
    np.savez(tmp_path / "e.npz", **ev.arrays())
    with np.load(tmp_path / "e.npz", allow_pickle=False) as arrays:
        back = Evidence.from_arrays(arrays)
    p = CorrectParams(min_confidence=0.3, require_agreement=False, clean_margin=0.1)
    want = decide(
        ev.labels, probs, ev.proto_sim, ev.clean_prob, p, prototype_weight=0.3,
        prototype_temperature=0.2,
    )  # fmt: skip
    got = back.decide(p)
    np.testing.assert_array_equal(got.corrected_label, want.corrected_label)
    np.testing.assert_array_equal(got.is_label_issue, want.is_label_issue)
    np.testing.assert_allclose(got.label_quality, want.label_quality)
    assert (back.proto_sim is None) == (not with_prototypes)


def test_which_corrections_train_and_which_read_prototypes():
    """recipes.correct dispatches on these two flags, not on names."""
    flags = {
        n: (CORRECTIONS.get(n).obj.trains, CORRECTIONS.get(n).obj.prototypes)
        for n in CORRECTIONS.names()
    }
    assert flags == {
        "prototype": (True, True),
        "prototype_vote": (False, True),
        "none": (False, False),
    }
