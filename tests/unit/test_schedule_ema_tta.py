"""Learning-rate schedules, weight averaging and test-time flips, pinned by values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from noisyflow.config import parse_params, with_overrides
from noisyflow.models import ImageClassifier
from noisyflow.recipes import _averaged
from noisyflow.train.data import TrainData
from noisyflow.train.engine import infer, lr_at
from noisyflow.train.runtime import Runtime
from noisyflow.train.state import Randomness, TrainState


def cfg(**over):
    return with_overrides(parse_params({}), {f"train.{k}": v for k, v in over.items()}).train


def test_step_schedule_drops_tenfold_after_step_at_of_the_epochs():
    c = cfg(lr=0.02, schedule="step", step_at=0.5)  # DivideMix: 0.02, x0.1 at half-way
    assert [lr_at(c, e, 10) for e in (0, 4, 5, 9)] == pytest.approx([0.02, 0.02, 0.002, 0.002])


def test_constant_and_cosine_schedules():
    assert lr_at(cfg(lr=0.1, schedule="constant"), 7, 10) == 0.1
    c = cfg(lr=0.1, schedule="cosine")
    assert lr_at(c, 0, 10) == pytest.approx(0.1)
    assert lr_at(c, 5, 10) == pytest.approx(0.1 * (0.01 + 0.99 * 0.5))


class Bias(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.zeros(1))


def test_ema_update_and_the_phase_ending_on_the_average():
    net = Bias()
    avg = _averaged(net, 0.5)
    state = TrainState([net], [], Randomness(0, torch.device("cpu")), averages=[avg])
    for value in (4.0, 8.0):  # two optimizer steps
        with torch.no_grad():
            net.b.fill_(value)
        avg.update_parameters(net)
    # AveragedModel starts from the first update's weights, then ema = 0.5 ema + 0.5 w
    assert state.eval_nets()[0].b.item() == pytest.approx(0.5 * 4.0 + 0.5 * 8.0)
    state.finalize()
    assert net.b.item() == pytest.approx(6.0)
    assert _averaged(net, 0.0) is None


class LeftRight(nn.Module):
    """Logits = (sum of the left half, sum of the right half) of the image."""

    def features(self, x):
        w = x.shape[-1] // 2
        return torch.stack([x[..., :w].sum((1, 2, 3)), x[..., w:].sum((1, 2, 3))], 1)

    head = nn.Identity()

    def forward(self, x):
        return self.head(self.features(x))


def test_flip_tta_averages_the_image_and_its_mirror():
    images = np.zeros((1, 2, 4, 1), dtype=np.uint8)
    images[0, :, :2, 0] = 255  # bright left half
    data = TrainData(images, np.zeros(1, dtype=np.int64), Runtime.cpu())
    plain, _ = infer(LeftRight(), data, runtime=Runtime.cpu())
    flipped, _ = infer(LeftRight(), data, runtime=Runtime.cpu(), tta="flip")
    assert_close(plain, torch.tensor([[4.0, 0.0]]))
    assert_close(flipped, torch.tensor([[2.0, 2.0]]))
    probs = ImageClassifier([LeftRight()], tta="flip")(torch.from_numpy(images))
    assert_close(probs, torch.tensor([[0.5, 0.5]]))
