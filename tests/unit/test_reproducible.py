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
    device = torch.device("cpu")
    prepared = recipes.prepare(params.data)
    _, nets, _ = recipes.warmup(params, prepared, device)
    first = recipes.divide(nets, prepared, params.codivide, params.seed, device)
    nets, final, history = recipes.train(params, prepared, nets, first, device)
    corr = recipes.correct(
        params.correct,
        prepared,
        nets,
        final,
        params.codivide.p_threshold,
        use_prototypes=True,
        seed=params.seed,
        device=device,
    )
    return prepared, final, corr, recipes.evaluate(prepared, nets, corr, device).metrics


def test_same_seed_same_everything_other_seed_differs():
    a_prep, a_div, a_corr, a_metrics = run(0)
    b_prep, b_div, b_corr, b_metrics = run(0)
    assert np.array_equal(a_prep.labels, b_prep.labels)
    assert np.array_equal(a_prep.x_test, b_prep.x_test)
    assert np.array_equal(a_div.clean_prob, b_div.clean_prob)
    assert np.array_equal(a_corr.corrected_label, b_corr.corrected_label)
    assert a_metrics == b_metrics
    _, c_div, _, _ = run(1)
    assert not np.array_equal(a_div.clean_prob, c_div.clean_prob)
