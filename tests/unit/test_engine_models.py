import pytest
import torch
from noisyflow.engine import cosine_lr, minibatches, optimize, predict, predict_ensemble, run_epochs

from noisyflow.errors import ParamsError
from noisyflow.models import MODELS, ModelConfig, create_model


@pytest.mark.parametrize("arch", sorted(MODELS))
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_every_model_gives_logits_and_features(arch, shape):
    net = create_model(ModelConfig(arch, shape[0], 7, width=4))
    x = torch.rand(3, *shape)
    assert net(x).shape == (3, 7)
    assert net.features(x).shape[0] == 3 and net.features(x).ndim == 2


def test_unknown_arch_lists_known_ones():
    with pytest.raises(ParamsError, match="known: cnn"):
        create_model(ModelConfig("vit", 1, 10))


def test_training_loop_fits_a_separable_toy_problem():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 4, 4)
    y = (x.mean((1, 2, 3)) > 0.5).long()
    net = create_model(ModelConfig("cnn", 1, 2, width=4))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(0)

    def step(idx):
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        return loss, {"loss": loss.item()}

    def epoch_fn(epoch):
        return optimize(net, opt, minibatches(torch.arange(64), 16, gen), step)

    seen = []
    history = run_epochs(30, epoch_fn, desc="toy", on_epoch_end=lambda e, s: seen.append(e))
    assert seen == list(range(30)) and [h["epoch"] for h in history] == seen
    assert history[-1]["loss"] < history[0]["loss"]
    assert (predict(net, x).argmax(1) == y).float().mean() > 0.8
    assert torch.allclose(predict_ensemble([net, net], x), 2 * predict(net, x))


def test_minibatches_cover_every_index_once():
    batches = minibatches(torch.arange(10), 4, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))


def test_cosine_lr_decays_to_floor():
    assert cosine_lr(0.1, 0, 10) == pytest.approx(0.1)
    assert cosine_lr(0.1, 10, 10) == pytest.approx(0.001)
    assert cosine_lr(0.1, 5, 10) < 0.1
