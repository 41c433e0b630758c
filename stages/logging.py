"""MLflow logging the stages share: the prepared data as an input, the deployable model."""

from __future__ import annotations

from pathlib import Path

from noisyflow.data.prepare import load_prepared
from noisyflow.lineage import dvc_hash
from noisyflow.types import Prepared
from stages.common import StageContext


def read_prepared(ctx: StageContext, prepared_dir: Path) -> Prepared:
    """Load the prepared data (memory-mapped) and record it as this run's training input."""
    prepared = load_prepared(prepared_dir)
    log_prepared(ctx, prepared_dir, prepared)
    return prepared


def log_prepared(ctx: StageContext, prepared_dir: Path, prepared: Prepared) -> None:
    """Record the prepared data (content digest = its DVC hash) as this run's training input."""
    meta = prepared.meta
    noise = meta.get("noise", {})
    source = meta.get("source", {}).get("type", "data")
    n = min(len(prepared.train), 256)  # MLflow profiles the arrays: a sample is enough
    ctx.log(
        "log_dataset",
        prepared.train.x[:n],
        prepared.train.labels[:n],
        name=f"{source}-{noise.get('type')}-{noise.get('rate')}",
        source=str(prepared_dir),
        digest=dvc_hash(prepared_dir),
        context="training",
        tags={
            "noise_type": noise.get("type"),
            "noise_rate": noise.get("rate"),
            "realised_noise_rate": noise.get("realised_rate"),
            "num_train": len(prepared.train),
        },
    )


def log_model(ctx: StageContext, nets: list, prepared: Prepared, checkpoint: Path) -> None:
    """Log the networks as one ImageClassifier (uint8 images in, probabilities out) and register
    it as the `candidate` version."""
    import numpy as np
    import torch

    from noisyflow.models import ImageClassifier

    example = torch.from_numpy(np.array(prepared.test.x[:4]))
    ctx.log(
        "log_model",
        ImageClassifier(nets, tta=ctx.params.model.tta),
        example,
        checkpoint=checkpoint,
        registered_model=ctx.params.tracking.registered_model,
        metadata={
            "classes": list(prepared.classes),
            "preprocessing": dict(prepared.meta.get("preprocessing", {})),
        },
    )
