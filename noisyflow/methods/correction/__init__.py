"""Label correction (`method.correction`): the suggested label, quality score and issue flag of
every training sample, and for Han et al.'s self-learning the extra training it implies."""

from __future__ import annotations

from dataclasses import dataclass

from noisyflow.config.parse import param
from noisyflow.methods.registry import NoParams, Registry

CORRECTIONS = Registry("correction", section="correction")

# Defaults of the prototype vote, one place for `decide.decide`, `decide.Evidence` and the params.
PROTOTYPE_WEIGHT = 0.5  # share of the prototype vote against the networks'
PROTOTYPE_TEMPERATURE = 0.1  # softmax temperature of the cosine similarities


@dataclass(frozen=True)
class PrototypeParams:
    """Han, Luo, Wang, ICCV 2019: prototypes per class -> pseudo-labels -> train on both."""

    rounds: int = param(2, ge=1)  # label-correction rounds (each followed by training)
    epochs: int = param(2, ge=1)  # training epochs per round
    alpha: float = param(0.5, ge=0.0, le=1.0)  # (1 - alpha) CE(y) + alpha CE(y_hat)
    # y_hat: `prototype` = the most similar class's prototypes (Han et al.); `decided` = that
    # class only where the `correct:` rule would change the label to it, else the given label
    pseudo_labels: str = param("prototype", choices=("prototype", "decided"))
    lr: float = param(0.005, gt=0.0)  # SGD learning rate of the self-learning phase
    prototypes: int = param(8, ge=1)  # p per class (Han et al.: 8)
    samples_per_class: int = param(400, ge=2)  # m candidates per class (Han et al.: 1280)
    density_quantile: float = param(0.4, gt=0.0, lt=1.0)  # S_c = similarity at this top fraction
    max_similarity: float = param(0.95, gt=0.0, le=1.0)  # prototypes less similar than this
    prototype_temperature: float = param(PROTOTYPE_TEMPERATURE, gt=0.0)  # vote's softmax temp.
    prototype_weight: float = param(PROTOTYPE_WEIGHT, ge=0.0, le=1.0)  # vote vs networks


@dataclass(frozen=True)
class VoteParams:
    """One-shot vote of the networks and the prototypes (no extra training)."""

    prototypes: int = param(8, ge=1)
    samples_per_class: int = param(400, ge=2)
    density_quantile: float = param(0.4, gt=0.0, lt=1.0)
    max_similarity: float = param(0.95, gt=0.0, le=1.0)
    prototype_temperature: float = param(PROTOTYPE_TEMPERATURE, gt=0.0)
    prototype_weight: float = param(PROTOTYPE_WEIGHT, ge=0.0, le=1.0)  # share of the prototype vote


@CORRECTIONS.register(
    "prototype", params=PrototypeParams, paper="Han, Luo, Wang, ICCV 2019 (self-learning)"
)
class SelfLearning:
    """Deep self-learning: alternate prototype label correction with training on y and y_hat."""

    trains = True
    prototypes = True


@CORRECTIONS.register(
    "prototype_vote", params=VoteParams, paper="prototypes of Han et al., ICCV 2019, one shot"
)
class PrototypeVote:
    """One-shot vote: the networks' prediction blended with prototype similarity."""

    trains = False
    prototypes = True


@CORRECTIONS.register("none", params=NoParams, paper="the networks' prediction")
class NetworksOnly:
    """No prototypes: the networks flag; labels change only with `require_agreement` off."""

    trains = False
    prototypes = False
