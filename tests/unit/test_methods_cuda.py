"""The method pieces on CUDA give what they give on the CPU (skipped without a GPU)."""

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import noisyflow.config  # noqa: F401  (imported first: config <-> methods import cycle)
from noisyflow.methods.losses import GCEParams, SCEParams, gce, one_hot, sce
from noisyflow.methods.mixing import draw_mixup, mix
from noisyflow.methods.selection.aum import AUMRecorder, margins
from noisyflow.methods.selection.coteaching import coteaching_losses, track_class_medians
from noisyflow.methods.selection.curriculum import curriculum_subsets
from noisyflow.methods.selection.gmm import GMMParams, fit_clean_probability
from noisyflow.methods.ssl.fixmatch import fixmatch_unlabelled_loss, strong_augment

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CUDA = torch.device("cuda")


def test_gmm_on_device_matches_cpu():
    rng = np.random.default_rng(0)
    losses = np.concatenate([rng.gamma(2.0, 0.1, 3000), 2.0 + rng.normal(0, 0.4, 2000)])
    cpu, _ = fit_clean_probability(losses, GMMParams())
    gpu, fit = fit_clean_probability(torch.from_numpy(losses).to(CUDA), GMMParams())
    assert_close(gpu, cpu, rtol=0, atol=1e-9)
    assert fit["clean_component"] == 0


def test_per_batch_pieces_on_device():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 10, generator=g)
    t = one_hot(torch.randint(10, (64,), generator=g), 10)
    for fn, p in ((gce, GCEParams()), (sce, SCEParams())):
        assert_close(fn(logits.to(CUDA), t.to(CUDA), p).cpu(), fn(logits, t, p))
    a, b = torch.rand(64, generator=g), torch.rand(64, generator=g)
    offset = torch.rand(64, generator=g)
    for off in (None, offset):  # the global rank and the rank against class medians
        cpu = coteaching_losses(a, b, 0.6, off, off)
        on = None if off is None else off.to(CUDA)
        gpu = coteaching_losses(a.to(CUDA), b.to(CUDA), 0.6, on, on)
        for x, y in zip(cpu, gpu, strict=True):
            assert_close(y.cpu(), x)
    y = torch.randint(10, (64,), generator=g)
    running = torch.rand(2, 10, generator=g)
    moved = track_class_medians(running.to(CUDA), torch.stack([a, b]).to(CUDA), y.to(CUDA), 0.1)
    assert_close(moved.cpu(), track_class_medians(running, torch.stack([a, b]), y, 0.1))
    rec = AUMRecorder(64, CUDA)
    rec.update(torch.arange(64, device=CUDA), margins(logits.to(CUDA), t.argmax(1).to(CUDA)))
    assert_close(rec.aum().cpu().float(), margins(logits, t.argmax(1)))
    loss, mask = fixmatch_unlabelled_loss(logits.to(CUDA), logits.flip(0).to(CUDA), 0.5)
    ref = fixmatch_unlabelled_loss(logits, logits.flip(0), 0.5)
    assert_close(loss.cpu(), ref[0])
    assert_close(mask.cpu(), ref[1])


def test_generators_on_device():
    gen = torch.Generator(CUDA).manual_seed(1)
    lam, perm = draw_mixup(1.0, 8, rng=np.random.default_rng(0), generator=gen)
    assert perm.device.type == "cuda" and sorted(perm.tolist()) == list(range(8))
    mixed, _ = mix(torch.rand(8, 3, device=CUDA), torch.eye(8, device=CUDA), lam, perm)
    assert mixed.device.type == "cuda"
    x = torch.rand(16, 3, 32, 32, device=CUDA)
    out = strong_augment(x, ops=2, magnitude=0.5, generator=torch.Generator(CUDA).manual_seed(2))
    again = strong_augment(x, ops=2, magnitude=0.5, generator=torch.Generator(CUDA).manual_seed(2))
    assert torch.equal(out, again) and out.min() >= 0 and out.max() <= 1
    # a CPU generator gives the same draws on any device
    cpu_gen = strong_augment(
        x.cpu(), ops=2, magnitude=0.5, generator=torch.Generator().manual_seed(3)
    )
    dev_gen = strong_augment(x, ops=2, magnitude=0.5, generator=torch.Generator().manual_seed(3))
    assert_close(dev_gen.cpu(), cpu_gen, rtol=0, atol=1e-4)


def test_curriculum_on_device():
    f = torch.randn(300, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    cpu = curriculum_subsets(f, 0.6)
    gpu = curriculum_subsets(f.to(CUDA), 0.6)
    assert torch.equal(gpu[0].cpu(), cpu[0]) and torch.equal(gpu[1].cpu(), cpu[1])
