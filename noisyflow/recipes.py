"""Recipes: each pipeline step as one function of typed params and the prepared data.

Stages (`stages/*.py`) wrap these with files, resume checkpoints and tracking; benchmarks, the
search and tests call them directly. No files, no MLflow here.

    warmup  -> divide -> train -> correct -> evaluate
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from noisyflow.config import Params
from noisyflow.errors import InputDataError, TrainingError
from noisyflow.methods import CORRECTIONS, MIXINGS, SELECTIONS
from noisyflow.methods import losses as L
from noisyflow.methods.correction import decide, prototypes
from noisyflow.methods.selection import SelectionInputs, Selector
from noisyflow.metrics import accuracy, confusion_matrix, detection_scores, per_class_accuracy
from noisyflow.models import ModelConfig, Network, create_model, load_pretrained
from noisyflow.train import steps
from noisyflow.train.data import TrainData, channel_stats
from noisyflow.train.engine import infer, lr_at, run_epochs, set_lr
from noisyflow.train.runtime import Runtime
from noisyflow.train.state import Checkpointer, Randomness, TrainState
from noisyflow.types import Correction, Division, Prepared

EpochCallback = Callable[[int, dict[str, float]], None]


# ----------------------------------------------------------------------------- networks


def model_config(params: Params, prepared: Prepared, extra_classes: int = 0) -> ModelConfig:
    mean, std = channel_stats(prepared.x_train)
    return ModelConfig(
        params.model.arch,
        int(prepared.x_train.shape[-1]),
        prepared.num_classes + extra_classes,
        params.model.width,
        tuple(mean),
        tuple(std),
    )


def build_nets(params: Params, prepared: Prepared, config: ModelConfig, runtime: Runtime):
    """`method.networks` freshly initialised networks (seeds seed, seed + 1) on the device."""
    nets = []
    sample = None
    for k in range(params.method.networks):
        torch.manual_seed(params.seed + k)
        net = create_model(config)
        missing = load_pretrained(net, params.model.weights) if params.model.weights else None
        whiten = hasattr(net.backbone, "init_whitening")
        if whiten and (missing is None or "whiten.weight" in missing):  # keep loaded filters
            if sample is None:
                sample = torch.from_numpy(np.array(prepared.x_train[:5000])).permute(0, 3, 1, 2)
                sample = (sample.float() / 255 - net.mean) / net.std
            net.backbone.init_whitening(sample)
        nets.append(runtime.place(net))
    return nets


def trim_head(net: Network, num_classes: int) -> None:
    """Drop extra output classes (AUM's threshold class) after the run that needed them."""
    old = net.head
    new = nn.Linear(old.in_features, num_classes).to(old.weight.device)
    with torch.no_grad():
        new.weight.copy_(old.weight[:num_classes])
        new.bias.copy_(old.bias[:num_classes])
    net.head = new


def nets_payload(
    config: ModelConfig, nets: list[nn.Module], prepared: Prepared, **extra: Any
) -> dict[str, Any]:
    """A model checkpoint: what rebuilds the networks and what `predict` needs around them.

    Plain-data entries go through one JSON round trip, so equal content pickles to equal bytes
    whether it was built in this process or restored from a resume checkpoint (pickle shares
    repeated objects, and which strings are shared depends on where they came from)."""
    plain = {
        "model_config": asdict(config),
        "classes": list(prepared.classes),
        "preprocessing": dict(prepared.meta.get("preprocessing", {})),
        **{k: v for k, v in extra.items() if not _has_tensors(v)},
    }
    return {
        **json.loads(json.dumps(plain)),
        "nets": [{k: v.detach().cpu() for k, v in n.state_dict().items()} for n in nets],
        **{k: v for k, v in extra.items() if _has_tensors(v)},
    }


def _has_tensors(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict):
        return any(_has_tensors(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_tensors(v) for v in value)
    return False


def load_nets(
    payload: dict[str, Any],
    runtime: Runtime,
    *,
    origin: str,
    expect: Params | None = None,
    prepared: Prepared | None = None,
) -> tuple[ModelConfig, list[Network]]:
    """Rebuild the networks of a checkpoint; with `expect` / `prepared`, refuse one made with
    other model params (arch, width, network count) or for other data (class or channel count),
    which would otherwise run on silently or fail with a raw shape error."""
    try:
        config = ModelConfig(**payload["model_config"])
        states = payload["nets"]
    except (KeyError, TypeError) as exc:
        raise InputDataError(f"{origin}: not a noisyflow model checkpoint ({exc})") from None
    if prepared is not None:
        want = (prepared.num_classes, int(prepared.x_train.shape[-1]))
        if (config.num_classes, config.in_channels) != want:
            raise InputDataError(
                f"{origin}: made for {config.num_classes} classes and {config.in_channels} "
                f"channel(s); the prepared data has {want[0]} classes and {want[1]} channel(s) "
                "(rerun the earlier stages)"
            )
    if expect is not None:
        want = (expect.model.arch, expect.model.width, expect.method.networks)
        have = (config.arch, config.width, len(states))
        if want != have:
            raise InputDataError(
                f"{origin}: made with model.arch={have[0]}, model.width={have[1]}, "
                f"{have[2]} network(s); params.yaml says {want[0]}, {want[1]}, {want[2]} "
                "(rerun the earlier stages)"
            )
    nets = []
    for state in states:
        net = create_model(config)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise InputDataError(f"{origin}: weights do not fit the model ({first})") from None
        nets.append(runtime.place(net))
    return config, nets


# ----------------------------------------------------------------------------- method


@dataclass
class Method:
    """The methods params.yaml picks, resolved once per stage."""

    params: Params
    selector: Selector
    mixer: Any
    loss_fn: L.LossFn

    @classmethod
    def from_params(cls, params: Params, *, selection_params: bool = True) -> Method:
        """Resolve the chosen methods. Stages that only use the selector's training hooks
        (warm-up, correction) pass selection_params=False and do not read its params."""
        m = params.method
        selector = make_selector(params, with_params=selection_params)
        mixer = MIXINGS.get(m.mixup).obj(params.chosen("mixup"))
        return cls(params, selector, mixer, L.bind(m.loss, params.chosen("loss")))


def make_selector(params: Params, *, with_params: bool = True) -> Selector:
    """The chosen selection method (without its params: only its training hooks work)."""
    name = params.method.selection
    return SELECTIONS.get(name).obj(
        params.chosen("selection") if with_params else None, seed=params.seed
    )


def _context(
    params: Params,
    method: Method,
    state: TrainState,
    data: TrainData,
    num_classes: int,
    optim: Any,
) -> steps.Context:
    return steps.Context(
        data=data,
        runtime=data.runtime,
        state=state,
        num_classes=num_classes,
        loss_fn=method.loss_fn,
        mixer=method.mixer,
        batch_size=optim.batch_size,
        shift=params.augment.shift,
        hflip=params.augment.hflip,
        penalty=optim.penalty,
        l1=optim.l1,
    )


def _new_state(
    params: Params, method: Method, nets: list[Network], runtime: Runtime, optim: Any, seed: int
) -> TrainState:
    extras = [_mixer_module(method, net, runtime) for net in nets]
    optimizers = []
    for net, extra in zip(nets, extras, strict=True):
        trainable = [p for p in net.parameters() if p.requires_grad]
        if extra is not None:
            trainable += list(extra.parameters())
        optimizers.append(
            runtime.optimizer(
                trainable,
                lr=optim.lr,
                momentum=optim.momentum,
                weight_decay=optim.weight_decay,
                nesterov=optim.nesterov,
            )
        )
    averages = [_averaged(net, optim.ema) for net in nets]
    return TrainState(nets, optimizers, Randomness(seed, runtime.device), extras, averages=averages)


def _averaged(net: Network, decay: float) -> nn.Module | None:
    """An exponential moving average of the network's weights and BN statistics (or None)."""
    if decay <= 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _mixer_module(method: Method, net: Network, runtime: Runtime) -> nn.Module | None:
    module = method.mixer.module(net.feature_dim, net.head.out_features)
    return None if module is None else module.to(runtime.device)


def _resume(state: TrainState, checkpointer: Checkpointer | None) -> dict[str, Any] | None:
    saved = checkpointer.load() if checkpointer is not None else None
    if saved is not None:
        state.load_state_dict(saved)
    return saved


# ----------------------------------------------------------------------------- warm-up


@dataclass
class WarmupResult:
    config: ModelConfig
    nets: list[Network]
    history: list[dict[str, float]]
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    resumed_from: int | None = None
    resumed_run_id: str | None = None


def warmup(
    params: Params,
    prepared: Prepared,
    runtime: Runtime,
    *,
    checkpointer: Checkpointer | None = None,
    on_epoch_end: EpochCallback | None = None,
    monitor: tuple[str, ...] = ("test", "val"),
) -> WarmupResult:
    """Train each network on every sample with the supervised loss for warmup.epochs epochs.

    A selection that learns from training statistics (AUM) adds its own classes and records
    per-sample statistics here; its extra outputs are removed at the end.
    """
    cfg = params.warmup
    method = Method.from_params(params, selection_params=False)
    selector = method.selector
    k_real = prepared.num_classes
    config = model_config(params, prepared, selector.extra_classes)
    nets = build_nets(params, prepared, config, runtime)
    data = TrainData(prepared.x_train, prepared.labels, runtime)
    state = _new_state(params, method, nets, runtime, cfg, params.seed)
    selector.init_stats(state.stats, data.labels, len(nets), k_real, cfg.epochs)
    saved = _resume(state, checkpointer)
    ctx = _context(params, method, state, data, config.num_classes, cfg)
    every = data.all_indices()
    watched = _watched(prepared, monitor, runtime)
    tta = params.model.tta

    def epoch_fn(epoch: int) -> dict[str, float]:
        set_lr(state.optimizers, lr_at(cfg, epoch, cfg.epochs))
        out: dict[str, float] = {}
        for k in range(len(nets)):
            assigned = selector.training_labels(state.stats, data.labels, k)
            record = partial_record(selector, state.stats, assigned, epoch)
            res = steps.supervised_pass(
                ctx,
                k,
                every,
                targets=steps.soft_targets(ctx, assigned),
                record=record,
                where=f"warmup epoch {epoch}, network {k + 1}",
            )
            out.update({f"{key}_net{k + 1}": v for key, v in res.items()})
        _record_accuracies(out, watched, state.eval_nets(), k_real, tta)  # real classes only
        return out

    history = run_epochs(
        state,
        cfg.epochs,
        epoch_fn,
        desc="warmup",
        checkpointer=checkpointer,
        on_epoch_end=on_epoch_end,
    )
    state.finalize()
    if config.num_classes != k_real:
        for net in nets:
            trim_head(net, k_real)
        config = ModelConfig(**{**asdict(config), "num_classes": k_real})
    return WarmupResult(
        config,
        nets,
        history,
        state.stats,
        resumed_from=None if saved is None else int(saved["epoch"]),
        resumed_run_id=None if saved is None else saved.get("run_id"),
    )


def partial_record(selector: Selector, stats: dict, assigned: torch.Tensor, epoch: int):
    if not selector.tracks_training:
        return None

    def record(k: int, idx: torch.Tensor, logits: torch.Tensor) -> None:
        selector.record(stats, k, idx, logits, assigned[idx], epoch)

    return record


# ----------------------------------------------------------------------------- division


def selection_inputs(
    selector: Selector,
    nets: list[Network],
    data: TrainData,
    num_classes: int,
    *,
    stats: dict[str, torch.Tensor] | None = None,
    epoch: int = 0,
) -> SelectionInputs:
    """Run the networks over the training set for what the selector requires."""
    losses = features = None
    if selector.requires & {"losses", "features"}:
        outs = [infer(net, data, runtime=data.runtime) for net in nets]
        if "losses" in selector.requires:
            losses = np.stack(
                [
                    torch.nn.functional.cross_entropy(z, data.labels, reduction="none")
                    .cpu()
                    .numpy()
                    for z, _ in outs
                ]
            ).astype(np.float64)
        if "features" in selector.requires:
            features = np.stack([f.cpu().numpy() for _, f in outs])
    return SelectionInputs(
        labels=data.labels.cpu().numpy(),
        num_classes=num_classes,
        losses=losses,
        features=features,
        stats={k: v.cpu().numpy() for k, v in (stats or {}).items()},
        epoch=epoch,
    )


def divide(
    params: Params,
    prepared: Prepared,
    nets: list[Network],
    runtime: Runtime,
    *,
    stats: dict[str, torch.Tensor] | None = None,
    epoch: int = 0,
) -> Division:
    """The selection method's division of the training set by the current networks."""
    selector = make_selector(params)
    data = TrainData(prepared.x_train, prepared.labels, runtime)
    inputs = selection_inputs(selector, nets, data, prepared.num_classes, stats=stats, epoch=epoch)
    return selector.divide(inputs, len(nets))


def division_metrics(div: Division, noise_mask: np.ndarray | None, known: np.ndarray | None):
    """Estimated noise rate, labelled fraction per network, detection scores when truth known."""
    mean_prob = div.clean_prob.mean(axis=0)
    noisy = ~div.labelled.any(axis=0) if div.num_nets > 1 else ~div.labelled[0]
    out = {"estimated_noise_rate": float(noisy.mean())}
    for k in range(div.num_nets):
        out[f"labelled_frac_net{k + 1}"] = float(div.labelled[k].mean())
    if noise_mask is not None and known is not None and known.any():
        det = detection_scores(noisy[known], noise_mask[known], 1 - mean_prob[known])
        out.update({f"detection_{k}": v for k, v in det.items()})
    return out


# ----------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    nets: list[Network]
    division: Division
    history: list[dict[str, float]]
    resumed_from: int | None = None
    resumed_run_id: str | None = None


def train(
    params: Params,
    prepared: Prepared,
    nets: list[Network],
    first: Division,
    runtime: Runtime,
    *,
    checkpointer: Checkpointer | None = None,
    on_epoch_end: EpochCallback | None = None,
    monitor: tuple[str, ...] = ("test", "val"),
) -> TrainResult:
    """train.epochs epochs of the chosen SSL / supervised method on the selection's division,
    re-divided at the start of every epoch after the first when the selector says so.

    Each epoch records `<split>_accuracy` of the ensemble for the splits in `monitor` that
    exist (a search monitors only "val", so it never reads the test split); detection scores
    against the truth are recorded only when "test" is monitored (benchmark mode)."""
    cfg = params.train
    method = Method.from_params(params)
    selector, ssl = method.selector, params.method.ssl
    data = TrainData(prepared.x_train, prepared.labels, runtime)
    watched = _watched(prepared, monitor, runtime)
    tta = params.model.tta
    truth = "test" in monitor
    state = _new_state(params, method, nets, runtime, cfg, params.seed + 100)
    state.division = first
    saved = _resume(state, checkpointer)
    ctx = replace(
        _context(params, method, state, data, prepared.num_classes, cfg),
        epoch_steps=cfg.epoch_steps,
    )
    known = prepared.train.truth_known if truth else None
    every = data.all_indices()

    def epoch_fn(epoch: int) -> dict[str, float]:
        if epoch > 0 and selector.redivide:
            inputs = selection_inputs(selector, nets, data, prepared.num_classes, epoch=epoch)
            state.division = selector.divide(inputs, len(nets))
        div = selector.at_epoch(state.division, epoch, cfg.epochs)
        mask = prepared.noise_mask if truth else None
        stats = division_metrics(div, mask, known)
        set_lr(state.optimizers, lr_at(cfg, epoch, cfg.epochs))
        where = f"train epoch {epoch}"
        if selector.per_batch:
            res = steps.coteaching_pass(
                ctx,
                every,
                keep_fraction=selector.keep_fraction(epoch),
                select=selector.batch_rule(div, data.labels),
                where=where,
            )
            stats.update(res)
        else:
            for k in range(len(nets)):
                own = div.for_net(k)
                res = _train_net(ctx, k, own, params, ssl, epoch, f"{where}, network {k + 1}")
                stats.update({f"{key}_net{k + 1}": v for key, v in res.items()})
        _record_accuracies(stats, watched, state.eval_nets(), tta=tta)
        return stats

    history = run_epochs(
        state,
        cfg.epochs,
        epoch_fn,
        desc="train",
        checkpointer=checkpointer,
        on_epoch_end=on_epoch_end,
    )
    state.finalize()
    final = state.division
    if selector.redivide:
        inputs = selection_inputs(selector, nets, data, prepared.num_classes, epoch=cfg.epochs)
        final = selector.divide(inputs, len(nets))
    return TrainResult(
        nets,
        final,
        history,
        resumed_from=None if saved is None else int(saved["epoch"]),
        resumed_run_id=None if saved is None else saved.get("run_id"),
    )


def _train_net(
    ctx: steps.Context, k: int, own: Division, params: Params, ssl: str, epoch: int, where: str
) -> dict[str, float]:
    if ssl == "mixmatch":
        return steps.mixmatch_pass(ctx, k, own, params.chosen("ssl"), epoch=epoch, where=where)
    if ssl == "fixmatch":
        from noisyflow.methods.ssl import fixmatch

        return steps.fixmatch_pass(
            ctx,
            k,
            own,
            params.chosen("ssl"),
            strong=fixmatch.strong_augment,
            unlabelled_loss=fixmatch.fixmatch_unlabelled_loss,
            where=where,
        )
    labelled = torch.as_tensor(own.labelled[0], device=ctx.data.device)
    indices = ctx.data.all_indices()[labelled]
    if len(indices) == 0:
        raise TrainingError(f"{where}: the selection left no labelled sample to train on")
    weights = steps.as_device(own.weight[0], ctx.data.device)
    return steps.supervised_pass(
        ctx, k, indices, targets=steps.soft_targets(ctx), weights=weights, where=where
    )


CURVE_TEST_MAX = 2000  # images of the per-epoch test curve


def _watched(prepared: Prepared, monitor: tuple[str, ...], runtime: Runtime) -> dict:
    """The splits whose accuracy each epoch records (only those asked for, so a search never
    reads the test split). The test curve uses at most CURVE_TEST_MAX evenly spaced images: on
    CIFAR-10's 10,000 it would otherwise cost as much as the training epoch; the final
    test_accuracy is always on the whole test split."""
    splits = {"test": lambda: prepared.test, "val": lambda: prepared.val}
    out = {}
    for name in monitor:
        split = splits[name]()
        if split is None or not len(split):
            continue
        x, labels = split.x, split.labels
        if name == "test" and len(labels) > CURVE_TEST_MAX:
            rows = np.linspace(0, len(labels) - 1, CURVE_TEST_MAX).round().astype(np.int64)
            x, labels = np.asarray(x[rows]), np.asarray(labels)[rows]
        out[name] = TrainData(x, labels, runtime)
    return out


def _accuracies(
    nets: list[Network], split: TrainData, num_classes: int | None = None, tta: str = "none"
) -> list[float]:
    """[ensemble accuracy, accuracy of each network] on `split` (first num_classes logits)."""
    logits = [infer(net, split, runtime=split.runtime, tta=tta)[0] for net in nets]
    if num_classes is not None:
        logits = [z[:, :num_classes] for z in logits]
    preds = [torch.stack(logits).sum(0).argmax(1), *(z.argmax(1) for z in logits)]
    return torch.stack([(p == split.labels).float().mean() for p in preds]).tolist()


def _record_accuracies(
    out: dict[str, float],
    watched: dict[str, TrainData],
    nets: list[Network],
    num_classes: int | None = None,
    tta: str = "none",
) -> None:
    """<split>_accuracy of the ensemble and, with two networks, <split>_accuracy_net<k>."""
    for name, split in watched.items():
        ensemble, *each = _accuracies(nets, split, num_classes, tta)
        out[f"{name}_accuracy"] = ensemble
        if len(each) > 1:
            out.update({f"{name}_accuracy_net{k + 1}": v for k, v in enumerate(each)})


# ----------------------------------------------------------------------------- correction


@dataclass
class CorrectResult:
    nets: list[Network]
    correction: Correction
    history: list[dict[str, float]]
    evidence: decide.Evidence  # what the decision read (replayable with other `correct:`)
    resumed_from: int | None = None
    resumed_run_id: str | None = None


def correct(
    params: Params,
    prepared: Prepared,
    nets: list[Network],
    division: Division,
    runtime: Runtime,
    *,
    checkpointer: Checkpointer | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> CorrectResult:
    """The chosen correction: Han et al.'s self-learning rounds (prototypes -> pseudo-labels ->
    training on (1 - alpha) CE(y) + alpha CE(y_hat)), a one-shot prototype vote, or the
    networks alone; then the conservative decision of `correct:` for every training sample."""
    p = params.chosen("correction")
    data = TrainData(prepared.x_train, prepared.labels, runtime)
    candidates = division.labelled.any(axis=0)
    clean_prob = division.clean_prob.mean(axis=0)
    rng = np.random.default_rng(params.seed + 200)
    history: list[dict[str, float]] = []
    saved = None
    method = CORRECTIONS.get(params.method.correction).obj
    if method.trains:
        nets, history, saved = _self_learning(
            params,
            prepared,
            nets,
            data,
            candidates,
            clean_prob,
            runtime,
            checkpointer,
            on_epoch_end,
        )
    views = [
        _network_view(net, prepared, data, candidates, p if method.prototypes else None, rng)
        for net in nets
    ]
    probs = [prob for prob, _ in views]
    proto_sim = (
        torch.stack([sim for _, sim in views]).mean(0).numpy() if method.prototypes else None
    )
    evidence = decide.Evidence(
        prepared.labels,
        np.stack(probs),
        proto_sim,
        clean_prob,
        prototype_weight=getattr(p, "prototype_weight", decide.PROTOTYPE_WEIGHT),
        prototype_temperature=getattr(p, "prototype_temperature", decide.PROTOTYPE_TEMPERATURE),
    )
    return CorrectResult(
        nets,
        evidence.decide(params.correct),
        history,
        evidence,
        resumed_from=None if saved is None else int(saved["epoch"]),
        resumed_run_id=None if saved is None else saved.get("run_id"),
    )


def _self_learning(
    params: Params,
    prepared: Prepared,
    nets: list[Network],
    data: TrainData,
    candidates: np.ndarray,
    clean_prob: np.ndarray,
    runtime: Runtime,
    checkpointer: Checkpointer | None,
    on_epoch_end: EpochCallback | None,
):
    """Rounds x epochs of self-learning; each round starts with a label-correction phase from
    each network's own features (Han, Luo, Wang, ICCV 2019)."""
    p = params.chosen("correction")
    optim = replace(params.train, lr=p.lr)
    method = Method.from_params(params, selection_params=False)
    state = _new_state(params, method, nets, runtime, optim, params.seed + 200)
    saved = _resume(state, checkpointer)
    ctx = _context(params, method, state, data, prepared.num_classes, optim)
    total = p.rounds * p.epochs

    def epoch_fn(epoch: int) -> dict[str, float]:
        # A correction phase opens each round; its pseudo-labels live in the resumable state,
        # so a run resumed mid-round trains on the labels the round started with.
        if epoch % p.epochs == 0 or "pseudo_labels" not in state.stats:
            rng = np.random.default_rng(params.seed + 300 + epoch // p.epochs)
            rows = [
                _pseudo_labels(params, prepared, net, data, candidates, clean_prob, rng)
                for net in nets
            ]
            state.stats["pseudo_labels"] = torch.stack(rows)
        pseudo = state.stats["pseudo_labels"]
        set_lr(state.optimizers, p.lr)
        out: dict[str, float] = {}
        for k in range(len(nets)):
            res = steps.supervised_pass(
                ctx,
                k,
                data.all_indices(),
                targets=steps.blended_targets(ctx, pseudo[k], p.alpha),
                where=f"correct epoch {epoch}, network {k + 1}",
            )
            out.update({f"{key}_net{k + 1}": v for key, v in res.items()})
            out[f"pseudo_changed_net{k + 1}"] = float((pseudo[k] != data.labels).float().mean())
        return out

    history = run_epochs(
        state, total, epoch_fn, desc="correct", checkpointer=checkpointer, on_epoch_end=on_epoch_end
    )
    state.finalize()
    return nets, history, saved


def _pseudo_labels(
    params: Params,
    prepared: Prepared,
    net: Network,
    data: TrainData,
    candidates: np.ndarray,
    clean_prob: np.ndarray,
    rng: np.random.Generator,
) -> torch.Tensor:
    """One network's y_hat for a self-learning round: the class of the most similar prototypes
    (Han et al.), or with `pseudo_labels: decided` the label the `correct:` rule gives from this
    network and those prototypes (the given label unless the evidence is strong)."""
    p = params.chosen("correction")
    prob, sim = _network_view(net, prepared, data, candidates, p, rng)
    if p.pseudo_labels == "prototype":
        return sim.argmax(1).to(data.device)
    decision = decide.decide(
        prepared.labels,
        prob[None],
        sim.numpy(),
        clean_prob,
        params.correct,
        prototype_weight=p.prototype_weight,
        prototype_temperature=p.prototype_temperature,
    )
    return torch.as_tensor(decision.corrected_label, device=data.device)


def _network_view(
    net: Network,
    prepared: Prepared,
    data: TrainData,
    candidates: np.ndarray,
    p: Any,
    rng: np.random.Generator,
) -> tuple[np.ndarray, torch.Tensor | None]:
    """One network's evidence on the training set: its softmax (N, K) and, given the prototype
    params `p`, the mean similarity (N, K) of its features to each class's prototypes."""
    logits, feats = infer(net, data, runtime=data.runtime)
    sim = None
    if p is not None:
        sim = prototypes.similarity_to_prototypes(
            feats.cpu(), prepared.labels, candidates, prepared.num_classes, p, rng
        )
    return torch.softmax(logits, 1).cpu().numpy(), sim


# ----------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    confusion: np.ndarray  # (K, K)
    per_class: np.ndarray  # (K,)
    predictions: np.ndarray  # (N_test,)


def evaluate(
    prepared: Prepared,
    nets: list[Network],
    correction: Correction | None,
    runtime: Runtime,
    *,
    tta: str = "none",
) -> Evaluation:
    """Test accuracy of the ensemble and each network; detection and correction scores on the
    training rows whose true label is known (none when nothing is known)."""
    test = TrainData(prepared.x_test, prepared.y_test, runtime)
    logits = [infer(n, test, runtime=runtime, tta=tta)[0].cpu() for n in nets]
    pred = torch.stack(logits).sum(0).argmax(1).numpy()
    metrics = {"test_accuracy": accuracy(pred, prepared.y_test)}
    for k, lg in enumerate(logits, start=1):
        metrics[f"test_accuracy_net{k}"] = accuracy(lg.argmax(1).numpy(), prepared.y_test)
    if prepared.val is not None and len(prepared.val):
        val = TrainData(prepared.val.x, prepared.val.labels, runtime)
        metrics["val_accuracy"] = _accuracies(nets, val, tta=tta)[0]  # the noisy val labels
    known = prepared.train.truth_known
    metrics["truth_known_fraction"] = 0.0 if known is None else float(known.mean())
    if correction is not None:
        metrics["estimated_noise_rate"] = float(correction.is_label_issue.mean())
        metrics["num_label_issues"] = float(correction.is_label_issue.sum())
        metrics["num_corrected"] = float((correction.corrected_label != prepared.labels).sum())
        if known is not None and known.any():
            truth, given = prepared.true_labels[known], prepared.labels[known]
            det = detection_scores(
                correction.is_label_issue[known],
                prepared.noise_mask[known],
                1 - correction.label_quality[known],
            )
            metrics.update({f"detection_{k}": v for k, v in det.items()})
            metrics["correction_accuracy"] = accuracy(correction.corrected_label[known], truth)
            metrics["given_label_accuracy"] = accuracy(given, truth)
    cm = confusion_matrix(prepared.y_test, pred, prepared.num_classes)
    return Evaluation(metrics, cm, per_class_accuracy(cm), pred)


# ----------------------------------------------------------------------------- whole pipeline


@dataclass(frozen=True)
class PipelineResult:
    nets: list[Network]
    division: Division
    correction: Correction
    evaluation: Evaluation | None
    history: list[dict[str, float]]
    evidence: decide.Evidence


def run_pipeline(
    params: Params,
    prepared: Prepared,
    runtime: Runtime,
    on_phase: Callable[[str], None] | None = None,
    *,
    on_epoch_end: Callable[[str, int, dict[str, float]], None] | None = None,
    monitor: tuple[str, ...] = ("test", "val"),
    evaluate_test: bool = True,
) -> PipelineResult:
    """warmup -> divide -> train -> correct -> evaluate in one process (benchmarks, search,
    tests). The DVC stages run the same functions one process each.

    on_phase(name) is called after each phase (timing); on_epoch_end(phase, epoch, stats) after
    every epoch (a search raises its pruning exception there). monitor / evaluate_test=False
    keep the test split and the true labels out of the run entirely (a search's objective).
    """
    mark = on_phase or (lambda name: None)

    def hook(phase: str) -> EpochCallback | None:
        if on_epoch_end is None:
            return None
        return lambda epoch, stats: on_epoch_end(phase, epoch, stats)

    w = warmup(params, prepared, runtime, on_epoch_end=hook("warmup"), monitor=monitor)
    mark("warmup")
    first = divide(params, prepared, w.nets, runtime, stats=w.stats)
    mark("codivide")
    t = train(params, prepared, w.nets, first, runtime, on_epoch_end=hook("train"), monitor=monitor)
    mark("train")
    c = correct(params, prepared, t.nets, t.division, runtime, on_epoch_end=hook("correct"))
    mark("correct")
    ev = (
        evaluate(prepared, c.nets, c.correction, runtime, tta=params.model.tta)
        if evaluate_test
        else None
    )
    mark("evaluate")
    return PipelineResult(c.nets, t.division, c.correction, ev, t.history, c.evidence)
