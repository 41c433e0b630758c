"""params.yaml -> typed Params: the repo's values, errors naming the dotted key, overrides,
method registries, combinations that cannot run, and the per-stage read-only view."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from noisyflow.config import (
    Params,
    load_params,
    parse_assignments,
    parse_params,
    to_dict,
    with_overrides,
)
from noisyflow.config.view import ParamsView, resolve_reads
from noisyflow.errors import ParamsError
from noisyflow.methods import FAMILIES
from noisyflow.methods.losses import GCEParams
from noisyflow.methods.selection.gmm import GMMParams

REPO = Path(__file__).resolve().parents[2]


def test_repo_params_match_the_interface_contract():
    p = load_params(REPO / "params.yaml")
    assert (p.data.source, p.data.test_size, p.data.split_seed) == ("digits", 500, 0)
    assert (p.data.noise.type, p.data.noise.rate, p.data.noise.seed) == ("symmetric", 0.4, 0)
    assert p.data.noise.include_true_class is False
    assert (p.method.loss, p.method.selection, p.method.ssl) == ("ce", "gmm", "mixmatch")
    assert (p.method.correction, p.method.mixup, p.method.networks) == ("prototype_vote", "none", 2)
    assert p.warmup.epochs > 0 and p.train.epochs > 0
    # the chosen methods' own params are reachable through `chosen`
    assert p.chosen("selection") == p.selection.gmm and p.chosen("loss") == p.losses.ce
    assert (
        p.chosen("ssl") == p.ssl.mixmatch and p.chosen("correction") == p.correction.prototype_vote
    )


def all_resolutions(key: str) -> list[str]:
    """A dvc.yaml params entry with `${method.<family>}` replaced by every registered name."""
    match = re.search(r"\$\{method\.(\w+)\}", key)
    if not match:
        return [key]
    (family,) = [f for f in FAMILIES if f.family == match.group(1)]
    return [key.replace(match.group(0), name) for name in family.names()]


def test_dvc_yaml_params_exist_for_every_method_choice_and_every_section_is_read():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    tree = to_dict(Params())
    used = set()
    for name, stage in stages.items():
        for key in stage.get("params", []):
            for resolved in all_resolutions(key):
                node = tree
                for part in resolved.split("."):
                    assert isinstance(node, dict) and part in node, (
                        f"dvc.yaml stage {name}: param {resolved} is not a params field"
                    )
                    node = node[part]
            used.add(key.split(".")[0])
    assert set(tree) - used == {"runtime", "tracking"}  # speed/bookkeeping, not results


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"train": {"epoch": 3}}, "unknown key 'train.epoch' (did you mean 'train.epochs'?)"),
        ({"data": {"noise": {"type": "pairflip"}}}, "data.noise.type: unknown value 'pairflip'"),
        ({"data": {"noise": {"rate": 1.5}}}, "data.noise.rate: must be <= 1.0, got 1.5"),
        ({"data": {"noise": {"rate": float("nan")}}}, "data.noise.rate: must be a finite number"),
        ({"warmup": {"epochs": "ten"}}, "warmup.epochs: expected an integer, got 'ten'"),
        ({"warmup": {"epochs": 0}}, "warmup.epochs: must be >= 1, got 0"),
        ({"data": {"source": "npz"}}, "data.path: required when data.source is 'npz'"),
        (
            {"selection": {"gmm": {"p_threshold": True}}},
            "selection.gmm.p_threshold: expected a number, got True",
        ),
        ({"selection": {"gmm": {"p_threshold": 1}}}, "selection.gmm.p_threshold: must be < 1.0"),
        (
            {"correction": {"prototype": {"prototype_temperature": 0}}},
            "correction.prototype.prototype_temperature: must be > 0.0, got 0.0",
        ),
        (
            {"losses": {"gce": {"qq": 1}}},
            "unknown key 'losses.gce.qq' (did you mean 'losses.gce.q'?)",
        ),
        ({"losses": {"gcee": {}}}, "unknown key 'losses.gcee' (did you mean 'losses.gce'?)"),
        (
            {"method": {"selection": "gmn"}},
            "method.selection: unknown 'gmn' (did you mean 'gmm'?); expected one of",
        ),
        ({"method": {"networks": 3}}, "method.networks: unknown value 3; expected one of 1, 2"),
        ({"losses": {"sce": {"alpha": 0, "beta": 0}}}, "losses.sce: alpha and beta cannot both"),
        ({"data": {"noise": {"pairs": [[1, 2, 3]]}}}, "data.noise.pairs: each entry must be"),
        ({"train": 5}, "train: expected a mapping, got 5"),
    ],
)
def test_bad_params_name_the_key(raw, message):
    with pytest.raises(ParamsError, match=re.escape(message)):
        parse_params(raw)


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ({"selection": "none"}, "method.ssl: 'mixmatch' needs a selection that leaves"),
        ({"selection": "coteaching"}, "method.selection: 'coteaching' selects inside each"),
        (
            {"selection": "coteaching", "ssl": "none", "networks": 1},
            "'coteaching' exchanges selections between two networks",
        ),
        ({"selection": "aum", "ssl": "none", "mixup": "mixup"}, "method.mixup: 'aum' records"),
        ({"mixup": "mixup"}, "method.mixup: MixMatch mixes its batches already"),
    ],
)
def test_combinations_that_cannot_run_are_refused(method, message):
    with pytest.raises(ParamsError, match=re.escape(message)):
        parse_params({"method": method})


def test_combinations_that_can_run_are_accepted():
    for method in (
        {"selection": "none", "ssl": "none"},
        {"selection": "coteaching", "ssl": "none"},
        {"selection": "aum", "ssl": "fixmatch"},
        {"selection": "gmm", "ssl": "none", "mixup": "afm", "networks": 1},
    ):
        assert parse_params({"method": method}).method == Params().method.__class__(**method)


def test_load_params_names_the_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("data:\n  noise:\n    type: gaussian\n")
    with pytest.raises(ParamsError, match=f"{re.escape(str(bad))}: data.noise.type"):
        load_params(bad)
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ParamsError, match=f"{re.escape(str(bad))}: not valid YAML"):
        load_params(bad)


def test_yaml_tags_that_construct_objects_are_refused(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_overrides_and_pairs_round_trip():
    p = with_overrides(Params(), {"train.epochs": 3, "data.noise.pairs": [[0, 1]]})
    assert p.train.epochs == 3 and p.data.noise.pairs == ((0, 1),)
    assert parse_params(to_dict(p)) == p
    q = with_overrides(p, {"losses.gce.q": 0.3, "method.loss": "gce"})
    assert q.losses.gce == GCEParams(q=0.3) and q.chosen("loss") == GCEParams(q=0.3)
    assert q.train.epochs == 3  # earlier overrides are kept
    with pytest.raises(ParamsError, match=re.escape("losses.gce.q: must be <= 1.0, got 1.5")):
        with_overrides(Params(), {"losses.gce.q": 1.5})


def test_assignments_become_typed_overrides():
    overrides = parse_assignments(["selection.gmm.p_threshold=0.7", "method.ssl=none"])
    assert overrides == {"selection.gmm.p_threshold": 0.7, "method.ssl": "none"}
    p = with_overrides(Params(), overrides)
    assert p.selection.gmm == GMMParams(p_threshold=0.7) and p.method.ssl == "none"
    with pytest.raises(ParamsError, match=r"cannot read value"):
        parse_assignments(["a.b=[unclosed"])


# ----------------------------------------------------------------------------- stage view


def test_resolve_reads_substitutes_the_chosen_methods():
    p = with_overrides(Params(), {"method.loss": "gce", "method.selection": "aum"})
    reads = ("seed", "losses.${method.loss}", "selection.${method.selection}")
    assert resolve_reads(reads, p) == ("seed", "losses.gce", "selection.aum")


def test_params_view_refuses_keys_the_stage_did_not_declare():
    p = with_overrides(Params(), {"method.loss": "gce"})
    view = ParamsView(p, resolve_reads(("seed", "method.loss", "losses.${method.loss}"), p), "s")
    assert view.seed == 0 and view.method.loss == "gce"
    assert view.losses.gce.q == 0.7
    assert view.runtime == p.runtime and view.tracking == p.tracking  # always readable
    assert view.params is p
    for read in (
        lambda: view.train,
        lambda: view.method.ssl,
        lambda: view.losses.sce,
        lambda: view.data.noise.rate,
    ):
        with pytest.raises(ParamsError, match="stage 's' read params key '.*' that its dvc.yaml"):
            read()


def test_params_view_chosen_reads_the_declared_section():
    p = Params()
    view = ParamsView(p, resolve_reads(("method", "selection.${method.selection}"), p), "s")
    assert view.chosen("selection") == p.selection.gmm
    with pytest.raises(ParamsError, match="read params key 'ssl' "):
        view.chosen("ssl")
    with pytest.raises(ParamsError, match="read params key 'selection.aum' "):
        view.selection.aum  # noqa: B018  (another method's section)
