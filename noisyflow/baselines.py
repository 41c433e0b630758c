"""Baselines outside the pipeline's stages: confident learning (cleanlab) on out-of-fold
probabilities, and plain cross-entropy on a chosen label set (the clean-label ceiling, the
truly-clean-samples oracle). Same network, loss and schedule as the pipeline's supervised steps.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold

from noisyflow.config import Params
from noisyflow.methods import losses as L
from noisyflow.methods.mixing import NoMixing
from noisyflow.models import Network
from noisyflow.recipes import build_nets, model_config
from noisyflow.train import steps
from noisyflow.train.data import TrainData
from noisyflow.train.engine import cosine_lr, infer, set_lr
from noisyflow.train.runtime import Runtime
from noisyflow.train.state import Randomness, TrainState
from noisyflow.types import Prepared, Split


def fit_ce(
    params: Params, prepared: Prepared, runtime: Runtime, *, epochs: int, seed: int
) -> Network:
    """One network trained with cross-entropy on prepared.train's labels for `epochs` epochs
    (the train section's optimizer, cosine schedule, weak augmentation)."""
    params = replace(params, seed=seed, method=replace(params.method, networks=1))
    cfg = params.train
    config = model_config(params, prepared)
    nets = build_nets(params, prepared, config, runtime)
    opt = runtime.optimizer(
        nets[0].parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    data = TrainData(prepared.x_train, prepared.labels, runtime)
    state = TrainState(nets, [opt], Randomness(seed, runtime.device), [None])
    ctx = steps.Context(
        data=data,
        runtime=runtime,
        state=state,
        num_classes=prepared.num_classes,
        loss_fn=L.bind("ce", None),
        mixer=NoMixing(None),
        batch_size=cfg.batch_size,
        shift=params.augment.shift,
        hflip=params.augment.hflip,
    )
    for epoch in range(epochs):
        set_lr([opt], cosine_lr(cfg.lr, epoch, epochs))
        steps.supervised_pass(
            ctx, 0, data.all_indices(), targets=steps.soft_targets(ctx), where=f"ce {epoch}"
        )
    return nets[0]


def subset(prepared: Prepared, rows: np.ndarray, labels: np.ndarray | None = None) -> Prepared:
    """prepared with the training split restricted to `rows` (and optionally relabelled)."""
    t = prepared.train
    train = Split(
        t.x[rows],
        (t.labels if labels is None else labels)[rows],
        t.index[rows],
        None if t.true_labels is None else t.true_labels[rows],
    )
    return Prepared(train, prepared.test, prepared.classes, prepared.val, prepared.meta)


def out_of_fold_probs(
    params: Params,
    prepared: Prepared,
    runtime: Runtime,
    *,
    epochs: int,
    folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """(N, K) probabilities, each training sample scored by a model that never saw it."""
    labels = prepared.labels
    probs = np.zeros((len(labels), prepared.num_classes))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (tr, te) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        net = fit_ce(params, subset(prepared, tr), runtime, epochs=epochs, seed=seed + k)
        held = TrainData(prepared.x_train[te], labels[te], runtime)
        probs[te] = torch.softmax(infer(net, held, runtime=runtime)[0], 1).cpu().numpy()
    return probs


def accuracy_on_test(net: Network, prepared: Prepared, runtime: Runtime) -> float:
    test = TrainData(prepared.x_test, prepared.y_test, runtime)
    pred = infer(net, test, runtime=runtime)[0].argmax(1)
    return float((pred == test.labels).float().mean())
