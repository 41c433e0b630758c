"""Model registry: params.yaml's `model.arch` names a backbone builder here; every model is a
`Network` (input normalisation + backbone + linear head), rebuilt from the `ModelConfig` that
each checkpoint stores.

    cnn              small VGG-style CNN (digits, CPU-sized CIFAR subsets)
    preact_resnet18  DivideMix's PreAct ResNet-18 (64 base channels in the paper)
    fastnet          airbench-style fast CIFAR network (the `fast` preset)
    timm/<name>      any model of the `timm` package (pretrained weights from `model.weights`)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from noisyflow.errors import InputDataError, ParamsError
from noisyflow.models.ensemble import Ensemble, ImageClassifier
from noisyflow.models.fastnet import FastNet
from noisyflow.models.network import Network
from noisyflow.models.preact_resnet import PreActResNet18
from noisyflow.models.small_cnn import SmallCNN


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network; stored inside each checkpoint."""

    arch: str
    in_channels: int
    num_classes: int
    width: int = 16
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.25,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))


Builder = Callable[[ModelConfig], nn.Module]

MODELS: dict[str, Builder] = {
    "cnn": lambda c: SmallCNN(c.in_channels, width=c.width),
    "preact_resnet18": lambda c: PreActResNet18(c.in_channels, width=c.width),
    "fastnet": lambda c: FastNet(c.in_channels, width=c.width),
}


def check_arch(arch: str) -> None:
    """ParamsError unless `arch` is registered or `timm/<name>`."""
    if arch.startswith("timm/") and len(arch) > 5:
        return
    if arch not in MODELS:
        raise ParamsError(
            f"model.arch: unknown {arch!r}; known: {', '.join(MODELS)}, or timm/<name>"
        )


def create_model(config: ModelConfig) -> Network:
    """A freshly initialised Network for `config` (seed torch first for reproducible init)."""
    check_arch(config.arch)
    if config.arch.startswith("timm/"):
        backbone = _timm_backbone(config.arch[5:], config.in_channels)
        dim = backbone.num_features
    else:
        backbone = MODELS[config.arch](config)
        dim = backbone.out_dim
    return Network(backbone, dim, config.num_classes, mean=config.mean, std=config.std)


def _timm_backbone(name: str, in_channels: int) -> nn.Module:
    try:
        import timm
    except Exception as exc:  # timm needs torchvision; either may be missing or broken
        raise ParamsError(
            f"model.arch: timm/{name} needs the `timm` package (pip install timm), "
            f"which could not be imported: {exc}"
        ) from None
    try:  # no hub download: weights come only from model.weights
        return timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels)
    except RuntimeError as exc:
        raise ParamsError(f"model.arch: timm has no model {name!r} ({exc})") from None


def load_pretrained(net: Network, path: str | Path) -> list[str]:
    """Load a local state dict into `net`'s backbone (head left for K classes).

    The file may hold a backbone's state dict (e.g. `timm.create_model(...).state_dict()`) or a
    whole noisyflow Network's; classifier weights in it are skipped. Loaded with
    weights_only=True. Returns the keys of the backbone that the file did not provide.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{path}: model.weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputDataError(f"{path}: not a loadable state dict ({exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputDataError(f"{path}: expected a state dict (name -> tensor)")
    if any(k.startswith("backbone.") for k in state):
        state = {k[9:]: v for k, v in state.items() if k.startswith("backbone.")}
    own = net.backbone.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise InputDataError(
            f"{path}: no tensor matches the backbone of this model.arch "
            f"(first keys: {', '.join(list(state)[:3])})"
        )
    net.backbone.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


__all__ = [
    "MODELS",
    "Ensemble",
    "FastNet",
    "ImageClassifier",
    "ModelConfig",
    "Network",
    "PreActResNet18",
    "SmallCNN",
    "check_arch",
    "create_model",
    "load_pretrained",
]
