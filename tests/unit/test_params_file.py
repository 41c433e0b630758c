"""The repo's params.yaml is complete: it loads, spells out every key of the schema, and holds
the parameters of every registered method under `<family section>.<name>`."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest
import yaml

from noisyflow.config import Params, flatten, load_params, to_dict
from noisyflow.methods import FAMILIES

REPO = Path(__file__).resolve().parents[2]
RAW = yaml.safe_load((REPO / "params.yaml").read_text())


def test_params_yaml_loads():
    params = load_params(REPO / "params.yaml")
    assert isinstance(params, Params)


def test_params_yaml_holds_every_schema_key_and_no_other():
    schema = set(flatten(to_dict(Params())))
    present = set(flatten(RAW))
    assert not schema - present, f"params.yaml lacks {sorted(schema - present)}"
    assert not present - schema, f"params.yaml has unknown {sorted(present - schema)}"


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.family)
def test_every_registered_method_has_its_section(family):
    section = RAW[family.section]
    assert list(section) == list(family.names()), family.section  # all of them, same order
    for entry in family.entries():
        own = section[entry.name]
        assert isinstance(own, dict), f"{family.section}.{entry.name} must be a mapping"
        expected = [f.name for f in fields(entry.params)]
        assert list(own) == expected, f"{family.section}.{entry.name}"


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.family)
def test_the_chosen_method_names_a_registered_entry_of_its_family(family):
    assert RAW["method"][family.family] in family.names()


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.family)
def test_each_family_section_is_the_params_field_of_its_registry(family):
    """`method.<family>` and `<section>.<name>` refer to the same registry in the schema."""
    (field,) = [f for f in fields(Params) if f.name == family.section]
    section = field.default_factory()
    assert is_dataclass(section)
    for entry in family.entries():
        assert isinstance(getattr(section, entry.name), entry.params), entry.name
    assert [f.name for f in fields(section)] == list(family.names())
    assert family.family in {f.name for f in fields(Params().method)}


def test_params_yaml_values_parse_into_each_methods_params():
    params = load_params(REPO / "params.yaml")
    for family in FAMILIES:
        for entry in family.entries():
            value = getattr(getattr(params, family.section), entry.name)
            expected = entry.params(**RAW[family.section][entry.name])
            assert value == expected, f"{family.section}.{entry.name}"


def test_params_yaml_values_are_the_schema_defaults():
    """A default changes in both places or neither: the code's defaults are what params.yaml
    runs (e.g. `ssl.fixmatch.prior_weight`, changed by a benchmark rule in RESULTS)."""
    defaults = flatten(to_dict(Params()))
    written = flatten(RAW)
    differ = {k: (written.get(k), v) for k, v in defaults.items() if written.get(k) != v}
    assert not differ, f"params.yaml / schema default differ: {differ}"
