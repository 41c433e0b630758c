"""params.yaml as frozen dataclasses: one per section, each field with its valid range.

Checked once at load (`noisyflow.config.load_params`): unknown keys, wrong types, values out of
range and unknown method names raise `ParamsError` naming the dotted key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from noisyflow.config.parse import param
from noisyflow.errors import ParamsError
from noisyflow.methods import FAMILIES, SELECTIONS, SSLS

SOURCES = ("digits", "npz", "imagefolder", "csv", "cifar10")
NOISE_TYPES = ("none", "symmetric", "asymmetric", "instance")
NOISE_MAPS = ("pairs", "cifar10")

# Asymmetric digits map of the benchmark protocol: 1<->7, 3<->8, 5<->6, 4<->9.
DEFAULT_PAIRS = ((1, 7), (7, 1), (3, 8), (8, 3), (5, 6), (6, 5), (4, 9), (9, 4))


@dataclass(frozen=True)
class NoiseParams:
    """Synthetic noise injected into the training labels (benchmarks); `none` for real data."""

    type: str = param("symmetric", choices=NOISE_TYPES)
    rate: float = param(0.4, ge=0.0, le=1.0)  # fraction replaced (per source class for asym)
    seed: int = param(0, ge=0)
    include_true_class: bool = False  # True: DivideMix convention, realised rate r*(1-1/K)
    map: str = param("pairs", choices=NOISE_MAPS)  # asymmetric: `pairs` below, or cifar10's map
    pairs: tuple[tuple[int, int], ...] = DEFAULT_PAIRS  # asymmetric map: (from, to)
    instance_std: float = param(0.1, ge=0.0, le=1.0)  # instance: std of per-sample flip rates

    def __post_init__(self) -> None:
        for pair in self.pairs:
            if len(pair) != 2:
                raise ParamsError(f"data.noise.pairs: each entry must be [from, to], got {pair!r}")


@dataclass(frozen=True)
class CsvParams:
    """Columns of a CSV label file (data.source: csv)."""

    path_column: str = "path"
    label_column: str = "label"
    true_label_column: str | None = None  # verified labels, blank where unaudited


@dataclass(frozen=True)
class DataParams:
    source: str = param("digits", choices=SOURCES)
    path: str | None = None  # npz file, image folder, CSV file or CIFAR-10 pack
    root: str | None = None  # csv: folder its paths are relative to (default: the CSV's folder)
    test_path: str | None = None  # a separate test set in the same format (labels as given)
    labels_path: str | None = None  # .csv (index,label) or .npy replacing the source's labels
    classes: tuple[str, ...] | None = None  # class names when the source has none
    subset: int | None = param(None, ge=2)  # keep the first N training images of the source
    test_size: int = param(500, ge=1)  # stratified held-out test, when no test_path
    val_size: int = param(0, ge=0)  # stratified noisy validation split held out of training
    split_seed: int = param(0, ge=0)
    image_size: int | None = param(None, ge=1, le=4096)  # square side; None = keep the source's
    resize: str = param("crop", choices=("crop", "stretch"))  # shorter side + centre crop | plain
    channels: int | None = param(None, choices=(1, 3))  # None = the source's own (files: 3)
    max_pixels: int = param(89_478_485, ge=1)  # larger declared images are refused (bombs)
    csv: CsvParams = field(default_factory=CsvParams)
    noise: NoiseParams = field(default_factory=NoiseParams)

    def __post_init__(self) -> None:
        needs_path = self.source in ("npz", "imagefolder", "csv", "cifar10")
        if needs_path and not self.path:
            raise ParamsError(f"data.path: required when data.source is {self.source!r}")
        if self.source == "digits" and self.test_path:
            raise ParamsError("data.test_path: digits has no separate test set (use test_size)")
        if self.labels_path and not self.labels_path.lower().endswith((".csv", ".npy")):
            raise ParamsError(
                f"data.labels_path: {self.labels_path!r}; expected a .csv (index,label) or .npy"
            )


@dataclass(frozen=True)
class MethodParams:
    """Which method of each family runs; each one's parameters live under its own section."""

    networks: int = param(2, choices=(1, 2))  # one network, or DivideMix's co-trained pair
    loss: str = "ce"  # losses.<name>
    selection: str = "gmm"  # selection.<name>
    ssl: str = "mixmatch"  # ssl.<name>
    mixup: str = "none"  # mixing.<name>
    correction: str = "prototype_vote"  # correction.<name>

    def __post_init__(self) -> None:
        for family in FAMILIES:
            family.get(getattr(self, family.family))  # unknown name -> nearest valid one


@dataclass(frozen=True)
class ModelParams:
    arch: str = "cnn"  # cnn | preact_resnet18 | fastnet | timm/<name>
    width: int = param(16, ge=1, le=4096)  # channels of the first block
    weights: str | None = None  # a local state-dict file to start from (head replaced for K)
    tta: str = param("none", choices=("none", "flip"))  # test-time augmentation of predictions


@dataclass(frozen=True)
class AugmentParams:
    shift: int = param(1, ge=0, le=64)  # random translation in pixels (pad + crop)
    hflip: bool = False  # horizontal flip (off for digits: a flipped 2 is not a 2)


@dataclass(frozen=True)
class RuntimeParams:
    """How to run, not what to compute: DVC does not track it (results on CPU are identical)."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    threads: int = param(0, ge=0)  # torch intra-op threads; 0 = min(cores, 4)
    decode_workers: int = param(0, ge=0)  # processes decoding images in prepare; 0 = all cores
    data_on_device: str = param("auto", choices=("auto", "yes", "no"))  # whole uint8 set on GPU
    amp: str = param("auto", choices=("auto", "bf16", "off"))  # auto = bf16 autocast on CUDA
    channels_last: bool = True  # NHWC memory format on CUDA
    compile: bool = False  # torch.compile the networks (CUDA; measure both)
    checkpoint_every: int = param(1, ge=0)  # epochs between resume checkpoints; 0 = off


@dataclass(frozen=True)
class OptimParams:
    lr: float = param(0.05, gt=0.0, le=10.0)  # SGD learning rate at the phase's start
    schedule: str = param("cosine", choices=("cosine", "step", "constant"))  # lr over epochs
    step_at: float = param(0.5, gt=0.0, le=1.0)  # step: lr x0.1 after this fraction of epochs
    momentum: float = param(0.9, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = param(5e-4, ge=0.0, lt=1.0)  # L2
    l1: float = param(0.0, ge=0.0)  # L1 weight penalty
    batch_size: int = param(64, ge=1)
    ema: float = param(0.0, ge=0.0, lt=1.0)  # per-step EMA decay of the weights; 0 = off


@dataclass(frozen=True)
class WarmupParams(OptimParams):
    epochs: int = param(10, ge=1)
    penalty: float = param(0.0, ge=0.0)  # negative-entropy weight (DivideMix: 1 for asym noise)


@dataclass(frozen=True)
class TrainParams(OptimParams):
    epochs: int = param(30, ge=1)
    # SSL epochs: one pass over the labelled set (DivideMix, FixMatch) or ceil(N / batch) steps
    # with the labelled set cycled (as many optimizer steps as a supervised epoch)
    epoch_steps: str = param("all", choices=("labelled", "all"))
    penalty: float = param(0.0, ge=0.0)  # negative-entropy weight on the supervised loss


@dataclass(frozen=True)
class CorrectParams:
    """When a suggested label replaces the given one (the `correct` stage, every correction)."""

    # the new label's blended probability (and, with `transition`, its posterior) must reach it
    min_confidence: float = param(0.5, ge=0.0, le=1.0)
    require_agreement: bool = True  # networks and a prototype vote (required) all must agree
    clean_margin: float = param(0.2, ge=0.0)  # bonus of the given label x its clean probability
    max_clean_prob: float = param(1.0, ge=0.0, le=1.0)  # labels the split trusts more are kept
    transition: bool = True  # the change must also win under the estimated P(given | class)
    plurality: bool = True  # no y -> j where the evidence picks j for given y more often than y


@dataclass(frozen=True)
class TrackingParams:
    enabled: bool = True  # false: log nothing (library use, search trials)
    experiment: str = "noisyflow"  # MLflow experiment name
    registered_model: str = "noisyflow-ensemble"  # MLflow registry name; "" = don't register


def _family_sections() -> dict[str, type]:
    return {family.section: family.section_type() for family in FAMILIES}


_SECTIONS = _family_sections()
LossesSection = _SECTIONS["losses"]
SelectionSection = _SECTIONS["selection"]
SslSection = _SECTIONS["ssl"]
MixingSection = _SECTIONS["mixing"]
CorrectionSection = _SECTIONS["correction"]


@dataclass(frozen=True)
class Params:
    seed: int = param(0, ge=0)  # networks' init, augmentation, GMM; not the split or the noise
    data: DataParams = field(default_factory=DataParams)
    model: ModelParams = field(default_factory=ModelParams)
    augment: AugmentParams = field(default_factory=AugmentParams)
    runtime: RuntimeParams = field(default_factory=RuntimeParams)
    method: MethodParams = field(default_factory=MethodParams)
    losses: LossesSection = field(default_factory=LossesSection)
    selection: SelectionSection = field(default_factory=SelectionSection)
    ssl: SslSection = field(default_factory=SslSection)
    mixing: MixingSection = field(default_factory=MixingSection)
    correction: CorrectionSection = field(default_factory=CorrectionSection)
    warmup: WarmupParams = field(default_factory=WarmupParams)
    train: TrainParams = field(default_factory=TrainParams)
    correct: CorrectParams = field(default_factory=CorrectParams)
    tracking: TrackingParams = field(default_factory=TrackingParams)

    def __post_init__(self) -> None:
        check_combination(self)

    def chosen(self, family: str) -> Any:
        """The parameters of the method chosen for `family` (e.g. "selection")."""
        registry = {f.family: f for f in FAMILIES}[family]
        return getattr(getattr(self, registry.section), getattr(self.method, family))


def check_combination(params: Params) -> None:
    """Refuse combinations that cannot run, with the reason."""
    m = params.method
    selector = SELECTIONS.get(m.selection).obj
    ssl = SSLS.get(m.ssl).obj
    if ssl.needs_unlabelled and not selector.yields_unlabelled:
        raise ParamsError(
            f"method.ssl: {m.ssl!r} needs a selection that leaves an unlabelled set; "
            f"method.selection {m.selection!r} does not (use gmm or aum, or ssl: none)"
        )
    if selector.per_batch and m.ssl != "none":
        raise ParamsError(
            f"method.selection: {m.selection!r} selects inside each supervised step; "
            "it needs method.ssl: none"
        )
    if selector.per_batch and m.networks != 2:
        raise ParamsError(
            f"method.selection: {m.selection!r} exchanges selections between two networks; "
            "it needs method.networks: 2"
        )
    if selector.tracks_training and m.mixup == "mixup":
        raise ParamsError(
            f"method.mixup: {m.selection!r} records margins of plain training forwards, which "
            "mixup replaces by mixed ones; use method.mixup: none or afm"
        )
    if m.selection == "aum" and params.warmup.epochs <= params.selection.aum.start_epoch:
        raise ParamsError(
            f"selection.aum.start_epoch: {params.selection.aum.start_epoch} leaves no warm-up "
            f"epoch to record margins from (warmup.epochs is {params.warmup.epochs})"
        )
    if m.ssl == "mixmatch" and m.mixup != "none":
        raise ParamsError(
            "method.mixup: MixMatch mixes its batches already; use method.mixup: none "
            "with method.ssl: mixmatch"
        )
