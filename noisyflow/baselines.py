"""Single-network baselines the benchmarks compare against: plain CE training (on any label
set or subset) and confident learning (cleanlab) on out-of-fold probabilities."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold

from noisyflow import losses
from noisyflow.data import augment_batch, to_tensor
from noisyflow.engine import cosine_lr, make_optimizer, minibatches, optimize, predict, set_lr
from noisyflow.models import ModelConfig, create_model


def fit_ce(
    images: np.ndarray,
    labels: np.ndarray,
    config: ModelConfig,
    *,
    epochs: int,
    lr: float = 0.05,
    batch_size: int = 64,
    weight_decay: float = 5e-4,
    shift: int = 1,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> torch.nn.Module:
    """Train one network with cross-entropy (SGD, cosine LR, random shifts) and return it."""
    torch.manual_seed(seed)
    net = create_model(config).to(device)
    opt = make_optimizer(net, lr=lr, momentum=0.9, weight_decay=weight_decay)
    x, y = to_tensor(images, device), torch.as_tensor(labels, device=device)
    gen = torch.Generator().manual_seed(seed)
    augment = partial(augment_batch, shift=shift, hflip=False, generator=gen)

    def step(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        idx = idx.to(device)
        loss = losses.cross_entropy(net(augment(x[idx])), y[idx])
        return loss, {"loss": loss.item()}

    for epoch in range(epochs):
        set_lr(opt, cosine_lr(lr, epoch, epochs))
        optimize(net, opt, minibatches(torch.arange(len(y)), batch_size, gen), step)
    return net


def out_of_fold_probs(
    images: np.ndarray,
    labels: np.ndarray,
    config: ModelConfig,
    *,
    folds: int = 5,
    seed: int = 0,
    **fit,
) -> np.ndarray:
    """(N, K) predicted probabilities, each sample scored by a model that never saw it."""
    probs = np.zeros((len(labels), config.num_classes))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (tr, te) in enumerate(splitter.split(images, labels)):
        net = fit_ce(images[tr], labels[tr], config, seed=seed + k, **fit)
        x = to_tensor(images[te], fit.get("device", "cpu"))
        probs[te] = torch.softmax(predict(net, x), 1).numpy()
    return probs
