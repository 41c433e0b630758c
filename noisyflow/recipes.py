"""Recipes: each pipeline step as one function over typed params and in-memory arrays.

Stages (`stages/*.py`) wrap these with file I/O and tracking; benchmarks and tests call them
directly. No files, no MLflow here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from noisyflow.config import CodivideParams, CorrectParams, DataParams, Params
from noisyflow.correction import Correction, class_prototypes, correct_labels, prototype_similarity
from noisyflow.data import augment_batch, load_source, stratified_split, to_tensor
from noisyflow.dividemix import MixMatchConfig, TrainSet, codivide, dividemix_epoch, warmup_epoch
from noisyflow.engine import (
    cosine_lr,
    make_optimizer,
    predict,
    predict_ensemble,
    run_epochs,
    set_lr,
)
from noisyflow.metrics import accuracy, confusion_matrix, detection_scores, per_class_accuracy
from noisyflow.models import ModelConfig, create_model
from noisyflow.noise import inject_noise, transition_matrix
from noisyflow.selection import estimated_noise_rate, split_by_threshold

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class Prepared:
    """The prepared data set. Truth fields are None when the source has no clean labels."""

    x_train: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64, given (noisy) labels
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    true_labels: np.ndarray | None = None
    noise_mask: np.ndarray | None = None
    train_index: np.ndarray | None = None  # rows of the source
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def prepare(params: DataParams) -> Prepared:
    """Load the source, split train/test (stratified, seeded), inject noise into train labels."""
    source = load_source(params.source, params.path)
    train_idx, test_idx = stratified_split(source.labels, params.test_size, params.split_seed)
    true = source.labels[train_idx]
    noise = params.noise
    labels = inject_noise(
        true,
        source.num_classes,
        noise_type=noise.type,
        rate=noise.rate,
        seed=noise.seed,
        include_true_class=noise.include_true_class,
        pairs=noise.pairs,
    )
    mask = labels != true
    # Truth is known when the source is curated or when we injected the noise ourselves.
    truth_known = source.labels_are_clean or noise.type != "none"
    meta = {
        "classes": list(source.classes),
        "num_classes": source.num_classes,
        "image_shape": list(source.images.shape[1:]),
        "num_train": int(len(train_idx)),
        "num_test": int(len(test_idx)),
        "train_class_counts": np.bincount(labels, minlength=source.num_classes).tolist(),
        "noise_type": noise.type,
        "noise_rate": noise.rate,
        "truth_known": truth_known,
        "realised_noise_rate": float(mask.mean()) if truth_known else None,
        "transition_matrix": transition_matrix(true, labels, source.num_classes).round(4).tolist()
        if truth_known
        else None,
    }
    return Prepared(
        source.images[train_idx],
        labels,
        source.images[test_idx],
        source.labels[test_idx],
        source.classes,
        true if truth_known else None,
        mask if truth_known else None,
        train_idx,
        meta,
    )


# ---------------------------------------------------------------- networks and checkpoints


def model_config(params: Params, prepared_shape: tuple[int, ...], num_classes: int) -> ModelConfig:
    return ModelConfig(params.model.arch, int(prepared_shape[-1]), num_classes, params.model.width)


def build_nets(config: ModelConfig, seed: int, device: torch.device) -> list[nn.Module]:
    """Two networks with different initialisations (seed, seed + 1)."""
    nets = []
    for k in range(2):
        torch.manual_seed(seed + k)
        nets.append(create_model(config).to(device))
    return nets


def nets_state(config: ModelConfig, nets: list[nn.Module], **extra: Any) -> dict[str, Any]:
    """Checkpoint payload: model config + both state dicts (+ extra plain state)."""
    return {
        "model_config": asdict(config),
        "nets": [{k: v.detach().cpu() for k, v in n.state_dict().items()} for n in nets],
        **extra,
    }


def load_nets(payload: dict[str, Any], device: torch.device) -> tuple[ModelConfig, list[nn.Module]]:
    config = ModelConfig(**payload["model_config"])
    nets = []
    for state in payload["nets"]:
        net = create_model(config)
        net.load_state_dict(state)
        nets.append(net.to(device))
    return config, nets


def _train_set(prepared: Prepared, device: torch.device) -> TrainSet:
    return TrainSet(
        to_tensor(prepared.x_train, device),
        torch.as_tensor(prepared.labels, device=device),
        prepared.num_classes,
    )


def _augmenter(params: Params, generator: torch.Generator):
    return partial(
        augment_batch, shift=params.augment.shift, hflip=params.augment.hflip, generator=generator
    )


# ---------------------------------------------------------------- steps


def warmup(
    params: Params,
    prepared: Prepared,
    device: torch.device,
    on_epoch_end: EpochCallback | None = None,
) -> tuple[ModelConfig, list[nn.Module], list[dict[str, float]]]:
    """Train two networks with CE + negative-entropy penalty for warmup.epochs epochs."""
    cfg = params.warmup
    config = model_config(params, prepared.x_train.shape, prepared.num_classes)
    nets = build_nets(config, params.seed, device)
    opts = [
        make_optimizer(n, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        for n in nets
    ]
    data = _train_set(prepared, device)
    gen = torch.Generator().manual_seed(params.seed)
    augment = _augmenter(params, gen)

    def epoch_fn(epoch: int) -> dict[str, float]:
        return warmup_epoch(
            nets,
            opts,
            data,
            batch_size=cfg.batch_size,
            penalty=cfg.penalty,
            augment=augment,
            generator=gen,
        )

    history = run_epochs(cfg.epochs, epoch_fn, desc="warmup", on_epoch_end=on_epoch_end)
    return config, nets, history


@dataclass(frozen=True)
class Division:
    """Per-network clean probabilities and losses, each (2, N)."""

    clean_prob: np.ndarray
    loss: np.ndarray


def divide(
    nets: list[nn.Module],
    prepared: Prepared,
    params: CodivideParams,
    seed: int,
    device: torch.device,
) -> Division:
    """Co-divide the prepared training set with both networks."""
    return _divide(nets, _train_set(prepared, device), params, seed)


def _divide(nets: list[nn.Module], data: TrainSet, params: CodivideParams, seed: int) -> Division:
    probs, losses = codivide(
        nets,
        data,
        max_iter=params.gmm_max_iter,
        tol=params.gmm_tol,
        reg_covar=params.gmm_reg_covar,
        seed=seed,
    )
    return Division(np.stack(probs), np.stack(losses))


def division_metrics(
    div: Division, p_threshold: float, noise_mask: np.ndarray | None
) -> dict[str, float]:
    """estimated_noise_rate per net and, with a known mask, detection scores of the mean split."""
    mean_prob = div.clean_prob.mean(axis=0)
    out = {"estimated_noise_rate": estimated_noise_rate(mean_prob, p_threshold)}
    for k, prob in enumerate(div.clean_prob, start=1):
        out[f"labelled_frac_net{k}"] = float(split_by_threshold(prob, p_threshold).mean())
    if noise_mask is not None:
        det = detection_scores(
            ~split_by_threshold(mean_prob, p_threshold), noise_mask, 1 - mean_prob
        )
        out.update({f"detection_{k}": v for k, v in det.items()})
    return out


def train(
    params: Params,
    prepared: Prepared,
    nets: list[nn.Module],
    first_division: Division,
    device: torch.device,
    on_epoch_end: EpochCallback | None = None,
) -> tuple[list[nn.Module], Division, list[dict[str, float]]]:
    """DivideMix co-training for train.epochs epochs, re-dividing at the start of each epoch
    after the first (which uses `first_division`, the codivide stage's output)."""
    cfg, cd = params.train, params.codivide
    opts = [
        make_optimizer(n, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        for n in nets
    ]
    data = _train_set(prepared, device)
    gen = torch.Generator().manual_seed(params.seed + 100)
    rng = np.random.default_rng(params.seed + 100)
    augment = _augmenter(params, gen)
    mm = MixMatchConfig(
        cfg.batch_size,
        cfg.alpha,
        cfg.temperature,
        cfg.lambda_u,
        cfg.rampup_epochs,
        cfg.prior_weight,
    )
    x_test = to_tensor(prepared.x_test, device)
    state = {"division": first_division}

    def epoch_fn(epoch: int) -> dict[str, float]:
        if epoch > 0:
            state["division"] = _divide(nets, data, cd, params.seed + epoch)
        div = state["division"]
        stats = division_metrics(div, cd.p_threshold, prepared.noise_mask)
        for opt in opts:
            set_lr(opt, cosine_lr(cfg.lr, epoch, cfg.epochs))
        for k, (net, peer, opt) in enumerate(
            ((nets[0], nets[1], opts[0]), (nets[1], nets[0], opts[1]))
        ):
            peer_prob = div.clean_prob[1 - k]  # net k learns from the OTHER net's division
            labelled = split_by_threshold(peer_prob, cd.p_threshold)
            out = dividemix_epoch(
                net,
                peer,
                opt,
                data,
                peer_prob,
                labelled,
                epoch=epoch,
                cfg=mm,
                augment=augment,
                generator=gen,
                rng=rng,
            )
            stats.update({f"{key}_net{k + 1}": v for key, v in out.items()})
        pred = predict_ensemble(nets, x_test).argmax(1).numpy()
        stats["test_accuracy"] = accuracy(pred, prepared.y_test)
        return stats

    history = run_epochs(cfg.epochs, epoch_fn, desc="train", on_epoch_end=on_epoch_end)
    final = _divide(nets, data, cd, params.seed + cfg.epochs)
    return nets, final, history


def correct(
    params: CorrectParams,
    prepared: Prepared,
    nets: list[nn.Module],
    division: Division,
    p_threshold: float,
    *,
    use_prototypes: bool,
    seed: int,
    device: torch.device,
) -> Correction:
    """Prototype correction from both networks' features, combined with their prediction."""
    x = to_tensor(prepared.x_train, device)
    clean_prob = division.clean_prob.mean(axis=0)
    probs = torch.stack([torch.softmax(predict(n, x), 1) for n in nets]).mean(0).numpy()
    proto_sim = None
    if use_prototypes:
        rng = np.random.default_rng(seed)
        sims = []
        for net in nets:
            feats = predict(net, x, features=True)
            protos = class_prototypes(
                feats,
                prepared.labels,
                clean_prob > p_threshold,
                prepared.num_classes,
                num=params.prototypes,
                samples_per_class=params.samples_per_class,
                density_quantile=params.density_quantile,
                max_similarity=params.max_similarity,
                rng=rng,
            )
            sims.append(prototype_similarity(feats, protos))
        proto_sim = torch.stack(sims).mean(0).numpy()
    return correct_labels(
        prepared.labels,
        probs,
        proto_sim,
        clean_prob,
        prototype_weight=params.prototype_weight,
        prototype_temperature=params.prototype_temperature,
        clean_margin=params.clean_margin,
    )


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    confusion: np.ndarray  # (K, K)
    per_class: np.ndarray  # (K,)
    predictions: np.ndarray  # (N_test,)


def evaluate(
    prepared: Prepared, nets: list[nn.Module], correction: Correction | None, device: torch.device
) -> Evaluation:
    """Test accuracy of the ensemble and each net; detection/correction scores when truth is known."""
    x_test = to_tensor(prepared.x_test, device)
    logits = [predict(n, x_test) for n in nets]
    pred = torch.stack(logits).sum(0).argmax(1).numpy()
    metrics = {"test_accuracy": accuracy(pred, prepared.y_test)}
    for k, lg in enumerate(logits, start=1):
        metrics[f"test_accuracy_net{k}"] = accuracy(lg.argmax(1).numpy(), prepared.y_test)
    if correction is not None:
        metrics["estimated_noise_rate"] = float(correction.is_label_issue.mean())
        if prepared.noise_mask is not None and prepared.true_labels is not None:
            det = detection_scores(
                correction.is_label_issue, prepared.noise_mask, 1 - correction.label_quality
            )
            metrics.update({f"detection_{k}": v for k, v in det.items()})
            metrics["correction_accuracy"] = accuracy(
                correction.corrected_label, prepared.true_labels
            )
            metrics["given_label_accuracy"] = accuracy(prepared.labels, prepared.true_labels)
    cm = confusion_matrix(prepared.y_test, pred, prepared.num_classes)
    return Evaluation(metrics, cm, per_class_accuracy(cm), pred)


@dataclass(frozen=True)
class PipelineResult:
    nets: list[nn.Module]
    division: Division
    correction: Correction
    evaluation: Evaluation
    history: list[dict[str, float]]


def run_pipeline(
    params: Params,
    prepared: Prepared,
    device: torch.device,
    on_phase: Callable[[str], None] | None = None,
) -> PipelineResult:
    """warmup -> codivide -> train -> correct -> evaluate in one process (benchmarks, tests).

    The DVC stages run the same functions one process each; `on_phase(name)` is called after
    each phase (timing hooks).
    """
    mark = on_phase or (lambda name: None)
    _, nets, _ = warmup(params, prepared, device)
    mark("warmup")
    first = divide(nets, prepared, params.codivide, params.seed, device)
    nets, final, history = train(params, prepared, nets, first, device)
    mark("train")
    corr = correct(
        params.correct,
        prepared,
        nets,
        final,
        params.codivide.p_threshold,
        use_prototypes=params.method.correction == "prototype",
        seed=params.seed,
        device=device,
    )
    mark("correct")
    return PipelineResult(nets, final, corr, evaluate(prepared, nets, corr, device), history)
