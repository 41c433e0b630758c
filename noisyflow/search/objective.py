"""The search objective: accuracy on a held-out *noisy* validation split, no clean labels.

A trial trains the whole pipeline (warm-up, selection, training, correction) on the training
split and is scored by the ensemble's accuracy against the given (noisy) labels of the
validation split (`data.val_size`, stratified, seeded, noise injected like the training split).

Why it ranks classifiers without clean labels (Chen, Liao, Chen, Zhang, ICML 2019,
"Understanding and Utilizing Deep Neural Networks Trained with Noisy Labels", Sec. 3): with
class-conditional noise T (T[i, j] = P(given j | true i)) that is independent of the image, a
classifier's expected noisy accuracy is sum_ij P(true i, pred j) T[i, j]. For symmetric noise
at rate r over K classes this is (1 - r - r/(K-1)) * clean_accuracy + r/(K-1): increasing in
clean accuracy exactly when T is diagonally dominant (r < (K-1)/K), so the ranking is the clean
one. It can misrank when the noise is not class-conditional (instance-dependent: a model that
imitates the annotator's mistakes scores higher) and, under asymmetric (pair) noise, when two
models' errors differ in kind: predicting the flip target of class i earns T[i, j] > 0, so a
model that learned the flips can outscore a slightly more accurate one; when T is not
diagonally dominant, the noisy label is the better bet and the objective rewards learning it.
docs/search.md discusses this; the benchmark measures the agreement (rank correlation of this
objective with the true test accuracy over the trials).

`score` runs on `blind(prepared)`: a copy holding only the training and validation images with
their given labels. The test split, the true labels and meta.json's noise record (the realised
rate, the transition matrix) are not in it, so nothing inside the trial can read them.
`truth` scores the trained networks against the truth afterwards, for logging and the rank
correlation only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from noisyflow.config import Params
from noisyflow.errors import ParamsError
from noisyflow.types import Prepared, Split

OBJECTIVE = "val_accuracy"  # the metric name the search maximises
OBJECTIVE_DESCRIPTION = "ensemble accuracy on the noisy validation labels (data.val_size)"
# what `truth` returns (never used to choose a trial)
TRUTH_KEYS = (
    "true_test_accuracy",
    "detection_f1",
    "detection_auroc",
    "correction_accuracy",
    "given_label_accuracy",
    "estimated_noise_rate",
)

# report(step, value): called after every training epoch with the validation accuracy; a
# pruner raises from it to stop the trial (optuna.TrialPruned propagates out of `score`).
Report = Callable[[int, float], None]
# on_epoch(phase, epoch, stats): every epoch of every phase (logging).
OnEpoch = Callable[[str, int, dict[str, float]], None]


@dataclass
class Outcome:
    """A finished trial: the objective and what `truth` needs."""

    value: float
    result: Any  # recipes.PipelineResult (networks, division, correction)
    history: list[dict[str, float]]


def blind(prepared: Prepared) -> Prepared:
    """The training and validation images with their given labels, nothing else.

    Reads only x, labels, index and paths of the train and val splits (never the test split,
    `true_labels` or meta), so the copy cannot leak them; the test split is empty."""
    train, val = prepared.train, prepared.val
    if val is None or len(val.labels) == 0:
        raise ParamsError(
            "data.val_size: the search scores trials on a held-out noisy validation split; "
            "set data.val_size > 0 (e.g. under fixed: in the space file)"
        )
    x = train.x
    empty = Split(
        x=np.zeros((0, *x.shape[1:]), dtype=x.dtype),
        labels=np.zeros(0, dtype=np.int64),
        index=np.zeros(0, dtype=np.int64),
    )
    return Prepared(
        train=Split(x=x, labels=train.labels, index=train.index, paths=train.paths),
        test=empty,
        classes=prepared.classes,
        val=Split(x=val.x, labels=val.labels, index=val.index, paths=val.paths),
        meta={},
    )


def score(
    params: Params,
    prepared: Prepared,
    runtime: Any,
    *,
    report: Report | None = None,
    on_epoch: OnEpoch | None = None,
) -> Outcome:
    """Train `params` on blind(prepared) and return the validation accuracy of the final
    networks (after correction). `report` gets the validation accuracy after each training
    epoch, numbered from 0."""
    from noisyflow import recipes

    seen = blind(prepared)

    def epoch_end(phase: str, epoch: int, stats: dict[str, float]) -> None:
        if on_epoch is not None:
            on_epoch(phase, epoch, stats)
        if report is not None and phase == "train" and OBJECTIVE in stats:
            report(epoch, float(stats[OBJECTIVE]))

    result = recipes.run_pipeline(
        params, seen, runtime, on_epoch_end=epoch_end, monitor=("val",), evaluate_test=False
    )
    value = val_accuracy(result.nets, seen, runtime)
    return Outcome(value, result, list(result.history))


def val_accuracy(nets: list[Any], prepared: Prepared, runtime: Any) -> float:
    """Ensemble accuracy on the validation split's given (noisy) labels."""
    from noisyflow.train.data import TrainData
    from noisyflow.train.engine import ensemble_logits

    val = prepared.val
    assert val is not None
    data = TrainData(val.x, val.labels, runtime)
    pred = ensemble_logits(nets, data, runtime=runtime).argmax(1)
    return float((pred == data.labels).float().mean())


def truth_known(prepared: Prepared) -> bool:
    """Whether every test image's true label is known (benchmarks with injected noise)."""
    t = prepared.test.true_labels
    return t is not None and len(t) > 0 and bool((t >= 0).all())


def truth(prepared: Prepared, outcome: Outcome, runtime: Any) -> dict[str, float]:
    """The trained trial against the truth: `true_test_accuracy` (test split's true labels),
    detection and correction scores where the training truth is known. Never feeds back into
    the search; for logging and rank correlation only."""
    from noisyflow import recipes

    result = outcome.result
    ev = recipes.evaluate(prepared, result.nets, result.correction, runtime)
    out = {k: float(ev.metrics[k]) for k in TRUTH_KEYS if k in ev.metrics}
    true = prepared.test.true_labels
    out["true_test_accuracy"] = float((ev.predictions == true).mean())
    return out
