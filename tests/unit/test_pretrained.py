"""Bring your own pretrained backbone: `model.weights` loads a local state dict (weights_only)
into the backbone, the head stays sized for the data's classes; `timm/<name>` builds any timm
model without downloading anything."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from noisyflow import recipes
from noisyflow.config import parse_params, with_overrides
from noisyflow.errors import InputDataError, ParamsError
from noisyflow.models import ModelConfig, create_model, load_pretrained
from noisyflow.train.runtime import Runtime
from noisyflow.types import Prepared, Split

X = torch.rand(3, 3, 16, 16)


def prepared(k: int = 4) -> Prepared:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (20, 16, 16, 3), dtype=np.uint8)
    y = np.arange(20) % k
    return Prepared(
        Split(x, y, np.arange(20)), Split(x[:4], y[:4], np.arange(4)), tuple("abcd"[:k])
    )


@pytest.mark.parametrize("arch", ["cnn", "preact_resnet18", "fastnet"])
def test_weights_file_loads_into_the_backbone_through_params(arch, tmp_path):
    torch.manual_seed(7)
    source = create_model(ModelConfig(arch, 3, 10, 8))  # "pretrained" on 10 other classes
    torch.save(source.state_dict(), tmp_path / "w.pt")
    params = with_overrides(
        parse_params({}),
        {"model.arch": arch, "model.width": 8, "model.weights": str(tmp_path / "w.pt")},
    )
    data = prepared(4)
    config = recipes.model_config(params, data)
    (net, _) = recipes.build_nets(params, data, config, Runtime.cpu())
    source.eval(), net.eval()
    mean, std = net.mean, net.std  # the new data's normalisation
    with torch.no_grad():
        expected = source.backbone((X - mean) / std)
        assert_close(net.features(X), expected)  # identical backbone outputs
    assert net.head.out_features == 4  # the head is sized for the new classes


def test_backbone_only_state_dict_and_refusals(tmp_path):
    net = create_model(ModelConfig("cnn", 3, 5, 8))
    torch.save(net.backbone.state_dict(), tmp_path / "b.pt")
    fresh = create_model(ModelConfig("cnn", 3, 5, 8))
    assert load_pretrained(fresh, tmp_path / "b.pt") == []  # every backbone tensor provided
    assert_close(fresh.backbone(X), net.backbone(X))
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InputDataError, match="no tensor matches the backbone"):
        load_pretrained(fresh, tmp_path / "other.pt")
    torch.save({"a": [1, 2]}, tmp_path / "bad.pt")
    with pytest.raises(InputDataError, match="expected a state dict"):
        load_pretrained(fresh, tmp_path / "bad.pt")
    with pytest.raises(InputDataError, match="not found"):
        load_pretrained(fresh, tmp_path / "missing.pt")


def test_a_pickled_payload_is_refused(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Boom()}, tmp_path / "evil.pt")
    with pytest.raises(InputDataError, match="not a loadable state dict"):
        load_pretrained(create_model(ModelConfig("cnn", 3, 5, 8)), tmp_path / "evil.pt")


def _timm():
    try:
        import timm

        return timm
    except Exception as exc:  # timm needs torchvision, which needs a matching torch build
        pytest.skip(f"timm is not importable here: {exc}")


def test_timm_backbone_with_local_weights(tmp_path):
    timm = _timm()
    torch.manual_seed(3)
    source = timm.create_model("resnet18", pretrained=False, num_classes=0)
    torch.save(source.state_dict(), tmp_path / "r18.pt")
    net = create_model(ModelConfig("timm/resnet18", 3, 4, 8))
    assert load_pretrained(net, tmp_path / "r18.pt") == []
    source.eval(), net.eval()
    with torch.no_grad():
        assert_close(net.backbone(X), source(X))
    assert net.head.out_features == 4


def test_timm_arch_without_timm_is_one_clear_error():
    try:
        import timm  # noqa: F401

        pytest.skip("timm is importable here")
    except Exception:
        pass
    with pytest.raises(ParamsError, match="needs the `timm` package"):
        create_model(ModelConfig("timm/resnet18", 3, 4, 8))
