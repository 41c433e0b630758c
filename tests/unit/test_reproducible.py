"""Same params and seed give the same labels, splits and (on CPU) the same metrics."""

import numpy as np
import torch

from noisyflow import recipes
from noisyflow.config import Params, with_overrides

TINY = {
    "data.test_size": 200,
    "model.width": 4,
    "warmup.epochs": 1,
    "train.epochs": 1,
    "correct.samples_per_class": 40,
    "correct.prototypes": 2,
}


def run(seed: int):
    params = with_overrides(Params(), {**TINY, "seed": seed})
    prepared = recipes.prepare(params.data)
    return prepared, recipes.run_pipeline(params, prepared, torch.device("cpu"))


def test_same_seed_same_everything_other_seed_differs():
    a_prep, a = run(0)
    b_prep, b = run(0)
    assert np.array_equal(a_prep.labels, b_prep.labels)
    assert np.array_equal(a_prep.x_test, b_prep.x_test)
    assert np.array_equal(a.division.clean_prob, b.division.clean_prob)
    assert np.array_equal(a.correction.corrected_label, b.correction.corrected_label)
    assert a.evaluation.metrics == b.evaluation.metrics
    _, c = run(1)
    assert not np.array_equal(a.division.clean_prob, c.division.clean_prob)
