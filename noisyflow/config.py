"""Typed view of params.yaml: one frozen dataclass per section, parsed and validated once.

`load_params` is the only code that reads params.yaml. Unknown keys, wrong types and values out
of range raise `ParamsError` naming the file and the dotted key, so a typo never silently falls
back to a default.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from noisyflow.errors import ParamsError

NOISE_TYPES = ("none", "symmetric", "asymmetric")
SOURCES = ("digits", "npz")
LOSSES = ("ce",)
SELECTIONS = ("gmm",)
SSLS = ("mixmatch",)
CORRECTIONS = ("prototype", "none")

# Asymmetric digits map of the benchmark protocol: 1<->7, 3<->8, 5<->6, 4<->9.
DEFAULT_PAIRS = ((1, 7), (7, 1), (3, 8), (8, 3), (5, 6), (6, 5), (4, 9), (9, 4))


@dataclass(frozen=True)
class NoiseParams:
    type: str = "symmetric"  # none | symmetric | asymmetric
    rate: float = 0.4  # fraction of labels replaced (per source class for asymmetric)
    seed: int = 0
    include_true_class: bool = False  # True: DivideMix convention, realised rate r*(1-1/K)
    pairs: tuple[tuple[int, int], ...] = DEFAULT_PAIRS  # asymmetric map: (from, to)

    def __post_init__(self) -> None:
        _check_choice("data.noise.type", self.type, NOISE_TYPES)
        _check_range("data.noise.rate", self.rate, 0.0, 1.0)
        for pair in self.pairs:
            if len(pair) != 2:
                raise ParamsError(f"data.noise.pairs: each entry must be [from, to], got {pair!r}")


@dataclass(frozen=True)
class DataParams:
    source: str = "digits"  # digits | npz
    path: str | None = None  # the .npz file when source is npz
    test_size: int = 500  # held-out test images, stratified, labels stay clean
    split_seed: int = 0
    noise: NoiseParams = field(default_factory=NoiseParams)

    def __post_init__(self) -> None:
        _check_choice("data.source", self.source, SOURCES)
        if self.source == "npz" and not self.path:
            raise ParamsError("data.path: required when data.source is 'npz'")
        if self.test_size < 1:
            raise ParamsError(f"data.test_size: must be >= 1, got {self.test_size}")


@dataclass(frozen=True)
class MethodParams:
    loss: str = "ce"
    selection: str = "gmm"
    ssl: str = "mixmatch"
    correction: str = "prototype"  # prototype | none

    def __post_init__(self) -> None:
        _check_choice("method.loss", self.loss, LOSSES)
        _check_choice("method.selection", self.selection, SELECTIONS)
        _check_choice("method.ssl", self.ssl, SSLS)
        _check_choice("method.correction", self.correction, CORRECTIONS)


@dataclass(frozen=True)
class ModelParams:
    arch: str = "cnn"  # see noisyflow.models.MODELS
    width: int = 32  # channels of the first conv block


@dataclass(frozen=True)
class AugmentParams:
    shift: int = 1  # random translation in pixels (pad + crop)
    hflip: bool = False  # horizontal flip (off for digits: a flipped 2 is not a 2)


@dataclass(frozen=True)
class RuntimeParams:
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    threads: int = 0  # torch intra-op threads; 0 = min(cores, 4)


@dataclass(frozen=True)
class OptimParams:
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.batch_size < 1:
            raise ParamsError(
                f"lr must be > 0 and batch_size >= 1, got {self.lr}, {self.batch_size}"
            )


@dataclass(frozen=True)
class WarmupParams(OptimParams):
    epochs: int = 10
    penalty: float = 0.0  # negative-entropy penalty weight; 0 disables it (DivideMix: 1 for asym)


@dataclass(frozen=True)
class CodivideParams:
    p_threshold: float = 0.5  # clean if the low-loss component's posterior exceeds this
    gmm_max_iter: int = 20
    gmm_tol: float = 1e-2
    gmm_reg_covar: float = 5e-4

    def __post_init__(self) -> None:
        _check_range("codivide.p_threshold", self.p_threshold, 0.0, 1.0)


@dataclass(frozen=True)
class TrainParams(OptimParams):
    epochs: int = 40
    alpha: float = 4.0  # Beta(alpha, alpha) for MixMatch mixup
    temperature: float = 0.5  # sharpening temperature T
    lambda_u: float = 25.0  # weight of the unlabelled MSE loss (ramped)
    rampup_epochs: int = 16  # linear ramp of lambda_u
    prior_weight: float = 1.0  # weight of the uniform-prior penalty

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alpha <= 0 or self.temperature <= 0:
            raise ParamsError("train.alpha and train.temperature must be > 0")


@dataclass(frozen=True)
class CorrectParams:
    prototypes: int = 8  # prototypes per class
    samples_per_class: int = 400  # m: candidates per class for density estimation
    density_quantile: float = 0.4  # S_c = similarity ranked at this top fraction
    max_similarity: float = 0.95  # prototypes must be less similar than this to denser ones
    prototype_temperature: float = 0.1  # softmax temperature over prototype similarities
    prototype_weight: float = 0.5  # share of the prototype vote vs the networks' prediction
    clean_margin: float = 0.05  # bonus of the given label, times its clean probability

    def __post_init__(self) -> None:
        _check_range("correct.density_quantile", self.density_quantile, 0.0, 1.0)
        _check_range("correct.prototype_weight", self.prototype_weight, 0.0, 1.0)
        if self.clean_margin < 0:
            raise ParamsError(f"correct.clean_margin: must be >= 0, got {self.clean_margin}")


@dataclass(frozen=True)
class TrackingParams:
    experiment: str = "noisyflow"  # MLflow experiment name
    registered_model: str = "noisyflow-ensemble"  # MLflow registry name; "" = don't register


@dataclass(frozen=True)
class Params:
    seed: int = 0  # seeds the networks, augmentation and GMM (not the data split/noise)
    data: DataParams = field(default_factory=DataParams)
    method: MethodParams = field(default_factory=MethodParams)
    model: ModelParams = field(default_factory=ModelParams)
    augment: AugmentParams = field(default_factory=AugmentParams)
    runtime: RuntimeParams = field(default_factory=RuntimeParams)
    warmup: WarmupParams = field(default_factory=WarmupParams)
    codivide: CodivideParams = field(default_factory=CodivideParams)
    train: TrainParams = field(default_factory=TrainParams)
    correct: CorrectParams = field(default_factory=CorrectParams)
    tracking: TrackingParams = field(default_factory=TrackingParams)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml. Raises ParamsError naming the file and key."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return parse_params(raw)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None


def parse_params(raw: dict[str, Any]) -> Params:
    """Build Params from a plain nested dict (as read from YAML)."""
    return _build(Params, raw, "")


def with_overrides(params: Params, overrides: dict[str, Any]) -> Params:
    """Return params with dotted-key overrides applied, e.g. {"train.epochs": 3}."""
    tree = to_dict(params)
    for key, value in overrides.items():
        set_dotted(tree, key, value)
    return parse_params(tree)


def set_dotted(tree: Any, key: str, value: Any) -> None:
    """tree["a"]["b"] = value for key "a.b", creating missing sections (any mapping type)."""
    *parents, leaf = key.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """['a.b=0.2', 'c=none'] -> {'a.b': 0.2, 'c': 'none'}; values are read as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ParamsError(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(text) if text.strip() else ""
    return out


def to_dict(params: Any) -> dict[str, Any]:
    """Params as plain nested dicts and lists (YAML/JSON friendly)."""
    return _plain(asdict(params))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{prefix.rstrip('.') or 'params'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    for key in raw:
        if key not in names:
            near = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}{near[0]}'?)" if near else ""
            raise ParamsError(f"unknown key '{prefix}{key}'{hint}")
    kwargs = {k: _coerce(hints[k], v, f"{prefix}{k}") for k, v in raw.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if is_dataclass(tp):
        return _build(tp, value, f"{key}.")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(args[0], value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        inner = typing.get_args(tp)[0]
        return tuple(_coerce(inner, v, key) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ParamsError(f"{key}: unknown value {value!r}; expected one of {', '.join(choices)}")


def _check_range(key: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ParamsError(f"{key}: must be in [{low}, {high}], got {value}")
