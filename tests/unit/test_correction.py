import numpy as np
import torch
from noisyflow.correction import (
    class_prototypes,
    correct_labels,
    prototype_similarity,
    select_prototypes,
)


def blobs(n_per=60, seed=0):
    """Three well-separated clusters in 8-D, labels 0..2."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.eye(8)[:3] * 5
    feats = torch.cat([c + 0.5 * torch.randn(n_per, 8, generator=g) for c in centers])
    return feats, np.repeat(np.arange(3), n_per)


def test_prototypes_are_dense_members_of_their_cluster():
    feats, labels = blobs()
    cls = feats[labels == 1]
    idx = select_prototypes(cls, num=4)
    assert 1 <= len(idx) <= 4 and len(set(idx.tolist())) == len(idx)
    proto = torch.nn.functional.normalize(cls[idx], dim=1)
    center = torch.nn.functional.normalize(cls.mean(0, keepdim=True), dim=1)
    assert (proto @ center.T).min() > 0.9


def test_two_mode_class_gets_prototypes_in_both_modes():
    g = torch.Generator().manual_seed(1)
    a = torch.tensor([5.0, 0, 0, 0]) + 0.2 * torch.randn(40, 4, generator=g)
    b = torch.tensor([0, 5.0, 0, 0]) + 0.2 * torch.randn(40, 4, generator=g)
    idx = select_prototypes(torch.cat([a, b]), num=6)
    assert (idx < 40).any() and (idx >= 40).any()


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


def test_clean_probability_breaks_near_ties_only():
    labels = np.array([0, 0, 0, 1])
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.48, 0.52], [0.5, 0.5]])
    clean = np.array([0.9, 1.0, 1.0, 0.0])
    out = correct_labels(labels, probs, None, clean, clean_margin=0.05)
    # a clear disagreement is flagged even when the GMM calls the sample clean (row 1);
    # a near tie keeps the given label when it is probably clean (row 2)
    assert out.corrected_label.tolist() == [0, 1, 0, 0]
    assert out.is_label_issue.tolist() == [False, True, False, True]
    assert ((out.label_quality >= 0) & (out.label_quality <= 1)).all()
    assert out.label_quality[1] < 0.5 < out.label_quality[0]


def test_large_margin_trusts_the_clean_probability():
    labels, probs = np.array([0]), np.array([[0.2, 0.8]])
    assert not correct_labels(labels, probs, None, np.array([1.0]), clean_margin=10).is_label_issue[
        0
    ]
    assert correct_labels(labels, probs, None, np.array([0.0]), clean_margin=10).is_label_issue[0]


def test_prototype_vote_can_overrule_a_wrong_network():
    labels = np.array([0])
    probs = np.array([[0.6, 0.4]])
    proto_sim = np.array([[0.1, 0.9]])
    out = correct_labels(labels, probs, proto_sim, np.array([0.0]), prototype_weight=0.8)
    assert out.corrected_label[0] == 1 and out.prototype_label[0] == 1
