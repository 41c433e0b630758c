"""The model registry and networks, and the one training loop (run_pass / run_epochs), the
inference path, batching, the LR schedule and resume checkpoints, pinned by values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

import noisyflow.config  # noqa: F401  (imported first: config <-> methods import cycle)
from noisyflow.errors import InputDataError, ParamsError, TrainingError
from noisyflow.models import (
    MODELS,
    Ensemble,
    ImageClassifier,
    ModelConfig,
    check_arch,
    create_model,
    load_pretrained,
)
from noisyflow.train.data import TrainData, cycle_batches, shuffled_batches
from noisyflow.train.engine import (
    FiniteGuard,
    cosine_lr,
    ensemble_logits,
    infer,
    run_epochs,
    run_pass,
    set_lr,
)
from noisyflow.train.runtime import Runtime
from noisyflow.train.state import Checkpointer, Randomness, TrainState

CPU = Runtime.cpu()

# ----------------------------------------------------------------------------- models

FEATURE_DIM = {"cnn": 4 * 4, "preact_resnet18": 8 * 4, "fastnet": 4 * 4}  # at width 4


def test_feature_dims_are_known_for_every_registered_arch():
    assert set(FEATURE_DIM) == set(MODELS)


@pytest.mark.parametrize("arch", sorted(MODELS))
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_every_model_gives_logits_and_features(arch, shape):
    c = shape[0]
    mean, std = (0.1, 0.2, 0.3)[:c], (0.5, 0.25, 0.2)[:c]
    torch.manual_seed(0)
    net = create_model(ModelConfig(arch, c, 7, width=4, mean=mean, std=std)).eval()
    x = torch.rand(3, *shape)
    feats = net.features(x)
    assert net.feature_dim == FEATURE_DIM[arch]
    assert feats.shape == (3, FEATURE_DIM[arch])
    assert net(x).shape == (3, 7)
    assert_close(net(x), net.head(feats))  # logits = head(features)
    # the per-channel normalisation is inside the network (buffers travel with checkpoints)
    m, s = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    assert_close(feats, net.backbone((x - m) / s))
    assert {"mean", "std"} <= set(net.state_dict())


def test_preact_resnet18_has_divide_mix_parameter_count():
    net = create_model(ModelConfig("preact_resnet18", 3, 10, width=64))
    assert sum(p.numel() for p in net.parameters()) == 11_171_274


def test_model_config_normalises_mean_and_std_to_float_tuples():
    config = ModelConfig("cnn", 3, 10, mean=[0, 1, 2], std=np.array([1.0, 2.0, 3.0]))
    assert config.mean == (0.0, 1.0, 2.0) and config.std == (1.0, 2.0, 3.0)
    assert all(type(v) is float for v in (*config.mean, *config.std))


def test_unknown_arch_lists_known_ones():
    with pytest.raises(ParamsError, match="model.arch: unknown 'vit'; known: cnn, "):
        create_model(ModelConfig("vit", 1, 10))
    with pytest.raises(ParamsError, match="model.arch"):
        check_arch("timm/")
    check_arch("timm/resnet18")  # any timm name passes the cheap check


def test_load_pretrained_fills_the_backbone_and_keeps_the_head(tmp_path):
    torch.manual_seed(0)
    source = create_model(ModelConfig("cnn", 1, 10, width=4)).eval()
    torch.manual_seed(1)
    target = create_model(ModelConfig("cnn", 1, 3, width=4)).eval()
    head = {k: v.clone() for k, v in target.head.state_dict().items()}
    path = tmp_path / "weights.pt"
    torch.save(source.state_dict(), path)  # a whole Network: backbone.* keys, other head
    assert load_pretrained(target, path) == []
    x = torch.rand(2, 1, 8, 8)
    assert_close(target.backbone(x), source.backbone(x))
    assert_close(target.head.state_dict(), head)
    torch.save({"unrelated": torch.zeros(3)}, path)
    with pytest.raises(InputDataError, match="no tensor matches the backbone"):
        load_pretrained(target, path)
    with pytest.raises(InputDataError, match="model.weights file not found"):
        load_pretrained(target, tmp_path / "missing.pt")


def test_ensemble_sums_logits_and_classifier_takes_uint8_nhwc():
    torch.manual_seed(0)
    a = create_model(ModelConfig("cnn", 1, 4, width=4)).eval()
    b = create_model(ModelConfig("cnn", 1, 4, width=4)).eval()
    images = torch.randint(0, 256, (3, 8, 8, 1), dtype=torch.uint8)
    x = images.permute(0, 3, 1, 2).float() / 255.0
    assert_close(Ensemble([a, b])(x), a(x) + b(x))
    probs = ImageClassifier([a, b]).eval()(images)
    assert_close(probs, torch.softmax(a(x) + b(x), dim=1))


# ----------------------------------------------------------------------------- batches


def test_shuffled_batches_cover_every_index_once():
    batches = shuffled_batches(torch.arange(10), 4, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    again = shuffled_batches(torch.arange(10), 4, torch.Generator().manual_seed(0))
    assert all(torch.equal(x, y) for x, y in zip(batches, again, strict=True))
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat(batches), perm)  # the generator's permutation, cut in order


def test_shuffled_batches_of_a_subset_keep_its_indices():
    idx = torch.tensor([3, 7, 11])
    batches = shuffled_batches(idx, 2, torch.Generator().manual_seed(1))
    assert sorted(torch.cat(batches).tolist()) == [3, 7, 11]


def test_cycle_batches_reshuffles_forever_and_yields_none_when_empty():
    gen = cycle_batches(torch.arange(5), 2, torch.Generator().manual_seed(0))
    first = [next(gen) for _ in range(6)]  # two epochs of [2, 2, 1]
    assert [len(b) for b in first] == [2, 2, 1, 2, 2, 1]
    assert sorted(torch.cat(first[:3]).tolist()) == list(range(5))
    assert sorted(torch.cat(first[3:]).tolist()) == list(range(5))
    empty = cycle_batches(torch.arange(0), 2, torch.Generator())
    assert next(empty) is None and next(empty) is None


# ----------------------------------------------------------------------------- LR


def test_cosine_lr_values():
    assert cosine_lr(0.1, 0, 10) == pytest.approx(0.1)
    assert cosine_lr(0.1, 5, 10) == pytest.approx(0.1 * (0.01 + 0.99 * 0.5))
    assert cosine_lr(0.1, 10, 10) == pytest.approx(0.001)
    assert cosine_lr(0.1, 20, 10) == pytest.approx(0.001)  # clamped at the floor
    t = 3 / 7
    assert cosine_lr(0.2, 3, 7, floor=0.1) == pytest.approx(
        0.2 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
    )


def test_set_lr_sets_every_group_of_every_optimizer():
    p, q = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    a = torch.optim.SGD([{"params": [p]}, {"params": [q], "lr": 5.0}], lr=1.0)
    b = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    set_lr([a, b], 0.25)
    assert [g["lr"] for g in a.param_groups + b.param_groups] == [0.25, 0.25, 0.25]


# ----------------------------------------------------------------------------- the loop


class Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))


def test_run_pass_steps_once_per_batch_and_averages_statistics():
    net = Scalar().eval()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    seen_w = []

    def step(i, batch):
        seen_w.append(net.w.item())
        loss = net.w * batch.sum()  # gradient = batch sum
        return loss, {"loss": loss, "index": torch.tensor(float(i))}

    batches = [torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([1.0, 2.0])]
    stats = run_pass(batches, step, [opt], train=[net], runtime=CPU, where="t")
    # w_{i+1} = w_i - 0.1 * sum(batch_i); gradients do not accumulate across batches
    assert seen_w == pytest.approx([0.0, -0.1, -0.3])
    assert net.w.item() == pytest.approx(-0.6)
    assert stats["loss"] == pytest.approx((0.0 + -0.1 * 2 + -0.3 * 3) / 3)
    assert stats["index"] == pytest.approx(1.0)
    assert net.training  # `train` networks are put in train mode
    assert run_pass([], step, [opt], train=[net], runtime=CPU, where="t") == {}


def test_run_pass_steps_every_optimizer_and_leaves_other_modules_alone():
    a, b, peer = Scalar(), Scalar(), Scalar().eval()
    opts = [torch.optim.SGD(a.parameters(), lr=1.0), torch.optim.SGD(b.parameters(), lr=0.5)]

    def step(i, batch):
        loss = 2 * a.w + 3 * b.w
        return loss, {"loss": loss}

    run_pass([0, 1], step, opts, train=[a, b], runtime=CPU, where="t")
    assert a.w.item() == pytest.approx(-4.0) and b.w.item() == pytest.approx(-3.0)
    assert not peer.training


def test_run_pass_with_a_step_that_reports_no_statistics():
    net = Scalar()
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    stats = run_pass(
        [0], lambda i, b: (net.w * 1.0, {}), [opt], train=[net], runtime=CPU, where="t"
    )
    assert stats == {} and net.w.item() == pytest.approx(-1.0)


def test_a_non_finite_loss_stops_the_pass_naming_epoch_and_batch():
    net = Scalar()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    losses = [1.0, 2.0, float("nan"), float("inf")]

    def step(i, batch):
        return net.w * 0 + losses[i], {}

    with pytest.raises(TrainingError, match=r"^warmup epoch 3, batch 2: the loss is NaN"):
        run_pass(range(4), step, [opt], train=[net], runtime=CPU, where="warmup epoch 3")


def test_finite_guard_remembers_the_first_bad_batch():
    guard = FiniteGuard(torch.device("cpu"))
    for i, v in enumerate([0.5, float("inf"), float("nan"), 1.0]):
        guard.observe(torch.tensor(v), i)
    with pytest.raises(TrainingError, match="x, batch 1:"):
        guard.check("x")
    FiniteGuard(torch.device("cpu")).check("fine")  # nothing observed: no error


def new_state(seed: int = 0) -> TrainState:
    torch.manual_seed(seed)
    net = create_model(ModelConfig("cnn", 1, 2, width=2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    return TrainState([net], [opt], Randomness(seed, torch.device("cpu")))


def toy_data():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 4, 4, 1), dtype=np.uint8)
    labels = (images.reshape(64, -1).mean(1) > 127.5).astype(np.int64)
    return TrainData(images, labels, CPU)


def epoch_fn_for(state: TrainState, data: TrainData, epochs: int):
    net, opt = state.nets[0], state.optimizers[0]

    def step(i, idx):
        loss = F.cross_entropy(net(data.batch(idx)), data.labels[idx])
        return loss, {"loss": loss}

    def epoch_fn(epoch):
        set_lr([opt], cosine_lr(0.1, epoch, epochs))
        batches = shuffled_batches(data.all_indices(), 16, state.random.gen)
        return run_pass(batches, step, [opt], train=[net], runtime=CPU, where=f"epoch {epoch}")

    return epoch_fn


def test_training_loop_fits_a_separable_toy_problem():
    data = toy_data()
    state = new_state()
    seen = []
    history = run_epochs(
        state,
        30,
        epoch_fn_for(state, data, 30),
        desc="toy",
        on_epoch_end=lambda e, s: seen.append((e, s["loss"])),
    )
    assert [e for e, _ in seen] == list(range(30))
    assert [h["epoch"] for h in history] == list(range(30))
    assert [h["loss"] for h in history] == [loss for _, loss in seen]
    assert state.epoch == 30 and history is state.history
    assert history[-1]["loss"] < history[0]["loss"]
    logits, feats = infer(state.nets[0], data, runtime=CPU, batch_size=10)
    assert logits.shape == (64, 2) and feats.shape == (64, state.nets[0].feature_dim)
    assert (logits.argmax(1) == data.labels).float().mean() > 0.8


def test_infer_is_eval_mode_logits_and_features_of_every_sample():
    data = toy_data()
    state = new_state()
    net = state.nets[0].train()
    logits, feats = infer(net, data, runtime=CPU, batch_size=7)
    assert not net.training
    x = data.batch(data.all_indices())
    assert_close(feats, net.features(x))
    assert_close(logits, net(x))
    flipped, _ = infer(net, data, runtime=CPU, tta="flip")
    assert_close(flipped, (net(x) + net(x.flip(-1))) / 2)


def test_ensemble_logits_sum_the_networks():
    data = toy_data()
    a, b = new_state(0).nets[0], new_state(1).nets[0]
    la, _ = infer(a, data, runtime=CPU)
    lb, _ = infer(b, data, runtime=CPU)
    assert not torch.allclose(la, lb)
    assert_close(ensemble_logits([a, b], data, runtime=CPU), la + lb)


def test_train_data_batches_are_float_nchw_in_unit_range():
    images = np.arange(2 * 3 * 2 * 3, dtype=np.uint8).reshape(2, 3, 2, 3) * 7
    for on_device in ("yes", "no"):
        data = TrainData(
            images, np.array([1, 0]), Runtime(torch.device("cpu"), data_on_device=on_device)
        )
        x = data.batch(torch.tensor([1, 0]))
        assert data.on_device == (on_device == "yes")
        assert data.shape == (2, 3, 3, 2) and x.shape == (2, 3, 3, 2)
        expected = torch.from_numpy(images[[1, 0]]).permute(0, 3, 1, 2).float() / 255.0
        assert_close(x, expected)
        assert data.labels.tolist() == [1, 0] and data.labels.dtype == torch.int64


# ----------------------------------------------------------------------------- resume


def test_run_epochs_continues_from_the_state_epoch():
    state = new_state()
    state.epoch, state.history = 2, [{"epoch": 0, "x": 1.0}, {"epoch": 1, "x": 2.0}]
    ran = []
    history = run_epochs(state, 4, lambda e: ran.append(e) or {"x": float(e)}, desc="t")
    assert ran == [2, 3]
    assert history == [
        {"epoch": 0, "x": 1.0},
        {"epoch": 1, "x": 2.0},
        {"epoch": 2, "x": 2.0},
        {"epoch": 3, "x": 3.0},
    ]


def test_checkpointer_saves_after_due_epochs_but_never_after_the_last(tmp_path):
    state = new_state()
    ck = Checkpointer(tmp_path / "s.pt", "fp", every=2)
    saved_at = []
    for epoch in range(1, 5):
        state.epoch = epoch
        ck.path.unlink(missing_ok=True)
        ck.save(state, epochs=4)
        if ck.path.exists():
            saved_at.append(epoch)
    assert saved_at == [2]
    off = Checkpointer(tmp_path / "off.pt", "fp", every=0)
    state.epoch = 1
    off.save(state, epochs=4)
    assert not off.path.exists() and off.load() is None


def test_resumed_training_ends_identical_to_an_uninterrupted_run(tmp_path):
    data = toy_data()
    whole = new_state()
    run_epochs(whole, 4, epoch_fn_for(whole, data, 4), desc="whole")

    ck = Checkpointer(tmp_path / "state.pt", "fingerprint-1")
    first = new_state()

    def stop_after_two(epoch):
        if epoch == 2:
            raise KeyboardInterrupt  # killed during epoch 2: epochs 0 and 1 are saved
        return epoch_fn_for(first, data, 4)(epoch)

    with pytest.raises(KeyboardInterrupt):
        run_epochs(first, 4, stop_after_two, desc="killed", checkpointer=ck)

    torch.manual_seed(123)  # a fresh process: different global RNG until the state is loaded
    resumed = new_state(seed=5)  # other init: everything must come from the checkpoint
    saved = ck.load()
    assert saved is not None and saved["epoch"] == 2
    resumed.load_state_dict(saved)
    history = run_epochs(resumed, 4, epoch_fn_for(resumed, data, 4), desc="resumed")
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert history == whole.history
    for key, value in whole.nets[0].state_dict().items():
        assert torch.equal(value, resumed.nets[0].state_dict()[key]), key
    assert Checkpointer(tmp_path / "state.pt", "fingerprint-2").load() is None  # other inputs
    (tmp_path / "torn.pt").write_bytes(b"not a checkpoint")
    assert Checkpointer(tmp_path / "torn.pt", "fingerprint-1").load() is None
