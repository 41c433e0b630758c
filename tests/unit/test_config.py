import re
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest
import yaml

from noisyflow.config import Params, load_params, parse_params, to_dict, with_overrides
from noisyflow.errors import ParamsError

REPO = Path(__file__).resolve().parents[2]


def test_repo_params_match_the_interface_contract():
    p = load_params(REPO / "params.yaml")
    assert (p.data.source, p.data.test_size, p.data.split_seed) == ("digits", 500, 0)
    assert (p.data.noise.type, p.data.noise.rate, p.data.noise.seed) == ("symmetric", 0.4, 0)
    assert p.data.noise.include_true_class is False
    assert (p.method.loss, p.method.selection, p.method.ssl) == ("ce", "gmm", "mixmatch")
    assert p.method.correction == "prototype"
    assert p.warmup.epochs > 0 and p.train.epochs > 0


def test_params_yaml_lists_every_field_of_the_dataclasses():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())

    def walk(obj, node, prefix=""):
        for f in fields(obj):
            assert f.name in node, f"params.yaml lacks {prefix}{f.name}"
            value = getattr(obj, f.name)
            if is_dataclass(value):
                walk(value, node[f.name], f"{prefix}{f.name}.")

    walk(Params(), raw)


def test_dvc_yaml_params_exist_and_every_section_is_read():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    tree = to_dict(Params())
    used = set()
    for stage in stages.values():
        for key in stage.get("params", []):
            node = tree
            for part in key.split("."):
                assert part in node, f"dvc.yaml param {key} is not a params field"
                node = node[part]
            used.add(key.split(".")[0])
    assert set(tree) - used <= {"runtime", "tracking"}  # speed/bookkeeping, not results


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"train": {"epoch": 3}}, "unknown key 'train.epoch' (did you mean 'train.epochs'?)"),
        ({"data": {"noise": {"type": "pairflip"}}}, "data.noise.type: unknown value 'pairflip'"),
        ({"data": {"noise": {"rate": 1.5}}}, "data.noise.rate: must be in [0.0, 1.0]"),
        ({"warmup": {"epochs": "ten"}}, "warmup.epochs: expected an integer"),
        ({"data": {"source": "npz"}}, "data.path: required"),
        ({"codivide": {"p_threshold": True}}, "codivide.p_threshold: expected a number"),
    ],
)
def test_bad_params_name_the_key(raw, message):
    with pytest.raises(ParamsError, match=re.escape(message)):
        parse_params(raw)


def test_load_params_names_the_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("data:\n  noise:\n    type: gaussian\n")
    with pytest.raises(ParamsError, match=f"{re.escape(str(bad))}: data.noise.type"):
        load_params(bad)
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "missing.yaml")


def test_overrides_and_pairs_round_trip():
    p = with_overrides(Params(), {"train.epochs": 3, "data.noise.pairs": [[0, 1]]})
    assert p.train.epochs == 3 and p.data.noise.pairs == ((0, 1),)
    assert parse_params(to_dict(p)) == p
