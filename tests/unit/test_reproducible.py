"""Same params and seed give the same labels, splits and (on CPU) the same results."""

from __future__ import annotations

import numpy as np

from noisyflow import recipes
from noisyflow.config import parse_params, with_overrides
from noisyflow.data.prepare import prepare_dataset
from noisyflow.train.runtime import Runtime

TINY = {
    "data.test_size": 200,
    "model.width": 4,
    "warmup.epochs": 1,
    "train.epochs": 1,
    "method.correction": "prototype",  # the longest chain: self-learning trains in `correct`
    "correction.prototype.rounds": 1,
    "correction.prototype.epochs": 1,
    "correction.prototype.samples_per_class": 40,
    "correction.prototype.prototypes": 2,
}


def prepare(tmp_path, name):
    params = with_overrides(parse_params({}), TINY)
    out = tmp_path / name
    prepared = prepare_dataset(params.data, out, cache_dir=tmp_path / "cache", base=tmp_path)
    return out, prepared


def run(prepared, seed: int):
    params = with_overrides(parse_params({}), {**TINY, "seed": seed})
    return recipes.run_pipeline(params, prepared, Runtime.cpu())


def test_same_seed_same_everything_other_seed_differs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # output journals go under the cwd
    a_dir, a_prep = prepare(tmp_path, "a")
    b_dir, b_prep = prepare(tmp_path, "b")
    files = sorted(p.name for p in a_dir.iterdir())
    assert files == sorted(p.name for p in b_dir.iterdir())
    for name in files:  # byte-identical prepared data
        assert (a_dir / name).read_bytes() == (b_dir / name).read_bytes(), name
    assert np.array_equal(a_prep.labels, b_prep.labels)

    a, b = run(a_prep, 0), run(b_prep, 0)
    assert np.array_equal(a.division.clean_prob, b.division.clean_prob)
    assert np.array_equal(a.correction.corrected_label, b.correction.corrected_label)
    assert np.array_equal(a.correction.label_quality, b.correction.label_quality)
    assert a.history == b.history
    assert a.evaluation.metrics == b.evaluation.metrics
    for net_a, net_b in zip(a.nets, b.nets, strict=True):
        for key, value in net_a.state_dict().items():
            assert value.equal(net_b.state_dict()[key]), key

    # another seed: other initial networks, so another first division (warm-up + divide only)
    first = {}
    for seed in (0, 1):
        params = with_overrides(parse_params({}), {**TINY, "seed": seed})
        warm = recipes.warmup(params, a_prep, Runtime.cpu())
        first[seed] = recipes.divide(params, a_prep, warm.nets, Runtime.cpu(), stats=warm.stats)
    assert not np.array_equal(first[0].clean_prob, first[1].clean_prob)
