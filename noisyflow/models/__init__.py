"""Model registry: params.yaml's `model.arch` names a builder here.

Every model exposes `features(x) -> (B, D)` (penultimate layer, used by prototype correction)
and `forward(x) -> (B, K)` logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from noisyflow.errors import ParamsError
from noisyflow.models.ensemble import Ensemble
from noisyflow.models.preact_resnet import PreActResNet18
from noisyflow.models.small_cnn import SmallCNN


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network; stored inside each checkpoint."""

    arch: str
    in_channels: int
    num_classes: int
    width: int = 32


MODELS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "cnn": lambda c: SmallCNN(c.in_channels, c.num_classes, width=c.width),
    "preact_resnet18": lambda c: PreActResNet18(c.in_channels, c.num_classes, width=c.width),
}


def create_model(config: ModelConfig) -> nn.Module:
    if config.arch not in MODELS:
        raise ParamsError(f"model.arch: unknown {config.arch!r}; known: {', '.join(MODELS)}")
    return MODELS[config.arch](config)


__all__ = ["MODELS", "Ensemble", "ModelConfig", "PreActResNet18", "SmallCNN", "create_model"]
