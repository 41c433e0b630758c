"""Semi-supervised training steps (`method.ssl`): how a network learns from its labelled set
and, when the selection leaves one, its unlabelled set."""

from __future__ import annotations

from dataclasses import dataclass

from noisyflow.config.parse import param
from noisyflow.methods.registry import NoParams, Registry

SSLS = Registry("ssl", section="ssl")


@dataclass(frozen=True)
class MixMatchParams:
    alpha: float = param(0.75, gt=0.0)  # Beta(alpha, alpha) of the mixup (MixMatch: 0.75)
    temperature: float = param(0.5, gt=0.0, le=1.0)  # sharpening temperature T
    lambda_u: float = param(25.0, ge=0.0)  # unlabelled loss weight (ramped)
    rampup_epochs: int = param(16, ge=0)  # linear ramp of lambda_u after warm-up
    prior_weight: float = param(1.0, ge=0.0)  # uniform-prior penalty weight


@dataclass(frozen=True)
class FixMatchParams:
    threshold: float = param(0.95, gt=0.0, lt=1.0)  # confidence tau for pseudo-labels
    lambda_u: float = param(1.0, ge=0.0)  # unlabelled loss weight
    mu: int = param(7, ge=1)  # unlabelled batch = mu x labelled batch
    strong_ops: int = param(2, ge=1, le=8)  # RandAugment-style ops per image
    strong_magnitude: float = param(0.5, gt=0.0, le=1.0)  # strength of each op, 0..1
    co_refine: bool = False  # labelled targets sharpen(w*y + (1-w)*p), as DivideMix's
    temperature: float = param(0.5, gt=0.0, le=1.0)  # sharpening T of co-refined targets
    prior_weight: float = param(1.0, ge=0.0)  # DivideMix's uniform-prior penalty; 0 = off


@SSLS.register(
    "mixmatch", params=MixMatchParams, paper="Berthelot et al., NeurIPS 2019; DivideMix, ICLR 2020"
)
class MixMatch:
    """MixMatch with DivideMix's co-refinement (labelled) and co-guessing (unlabelled)."""

    needs_unlabelled = True


@SSLS.register("fixmatch", params=FixMatchParams, paper="Sohn et al., NeurIPS 2020")
class FixMatch:
    """FixMatch: weak-view pseudo-labels above a confidence threshold train the strong view.

    Pieces in ssl/fixmatch.py: `strong_augment` (batched RandAugment + Cutout) and
    `fixmatch_unlabelled_loss` (mask * CE averaged over all mu*B unlabelled samples).
    `co_refine` (not in the paper) trains the labelled view on DivideMix's co-refined target
    instead of the given label: the peer's clean probability w blends the label with the
    network's own prediction on that view, then sharpens (Li et al., ICLR 2020). `prior_weight`
    (not in the paper either) adds DivideMix's penalty KL(uniform || mean prediction) over every
    view of the step, against predictions that drop a class.
    """

    needs_unlabelled = True


@SSLS.register("none", params=NoParams, paper="supervised training on the labelled set")
class Supervised:
    """Supervised: the loss on the labelled set only (weighted; mixup / AFM if enabled)."""

    needs_unlabelled = False
