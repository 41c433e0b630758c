"""The `fast` and `reference` presets are valid params overlays; `noisyflow preset --apply`
writes them into params.yaml keeping its comments."""

from __future__ import annotations

import shutil

import pytest

from noisyflow.config import load_params, parse_params
from noisyflow.config.presets import preset_overrides, with_preset
from noisyflow.errors import ParamsError
from pipeline.cli import main
from tests.helpers import REPO


@pytest.mark.parametrize("name", ["fast", "reference"])
def test_presets_are_valid_overlays(name):
    params = with_preset(parse_params({}), name)
    for key, value in preset_overrides(name).items():
        node = params
        for part in key.split("."):
            node = getattr(node, part)
        assert node == (tuple(value) if isinstance(value, list) else value), key


def test_reference_preset_is_divide_mix_cifar_recipe():
    p = with_preset(parse_params({}), "reference")
    assert (p.model.arch, p.model.width) == ("preact_resnet18", 64)
    assert p.warmup.epochs + p.train.epochs == 300 and p.train.lr == 0.02
    assert round(p.train.step_at * p.train.epochs) == 140  # lr x0.1 at global epoch 150
    assert p.selection.gmm.max_iter == 10 and p.ssl.mixmatch.lambda_u == 25.0


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ParamsError, match="known: fast, reference"):
        preset_overrides("quick")


def test_apply_writes_the_preset_keeping_comments(tmp_path, monkeypatch):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    assert main(["preset", "fast", "--apply"]) == 0
    text = (tmp_path / "params.yaml").read_text()
    assert "# noisyflow parameters" in text and "arch: fastnet" in text
    assert load_params(tmp_path / "params.yaml").train.ema == 0.99
