"""Bad input to a stage: one line `error: <file or key>: <what was expected>` on stderr, exit
code 2, no traceback, and none of the stage's outputs written (previous outputs untouched).

Table-driven: each case builds one broken input (or params) on top of a small valid project
(prepared digits subset, untrained checkpoint, division, label-issue table) and runs one stage
in-process at the dvc.yaml paths."""

from __future__ import annotations

import csv
import pathlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from noisyflow import recipes
from noisyflow.artifacts import save_division, save_label_issues
from noisyflow.config import load_params
from noisyflow.data.prepare import prepare_dataset
from noisyflow.io import load_checkpoint, save_checkpoint
from noisyflow.methods.selection import all_labelled
from noisyflow.models import create_model
from noisyflow.train.runtime import Runtime
from noisyflow.types import Correction
from stages import codivide, correct, evaluate, prepare, train, warmup
from tests.helpers import REPO, write_params

SMALL = {"data.subset": 300, "data.test_size": 50, "tracking.experiment": "bad-input"}
DVC_DEPS = {
    name: set(
        d for item in stage.get("deps", []) for d in (item if isinstance(item, dict) else [item])
    )
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items()
}


@pytest.fixture(scope="module")
def ready(tmp_path_factory):
    """A valid project: prepared data, a checkpoint, a division and a label-issue table."""
    root = tmp_path_factory.mktemp("bad_input")
    params_file = write_params(root / "params.yaml", SMALL)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        p = load_params(params_file)
        prepared = prepare_dataset(p.data, root / "prepared", cache_dir=root / "cache", base=root)
    config = recipes.model_config(p, prepared)
    nets = recipes.build_nets(p, prepared, config, Runtime.cpu())
    save_checkpoint(root / "model.pt", recipes.nets_payload(config, nets, prepared, history=[]))
    n = len(prepared.labels)
    save_division(root / "division.npz", all_labelled(2, n))
    noisy = prepared.noise_mask
    correction = Correction(
        corrected_label=np.where(noisy[::-1], prepared.true_labels, prepared.labels),
        label_quality=np.linspace(0.05, 0.95, n),
        is_label_issue=noisy[::-1].copy(),
        prototype_label=np.arange(n) % prepared.num_classes,
    )
    save_label_issues(root / "label_issues.csv", prepared, correction)
    (root / "sources.json").write_text("{}\n")
    return SimpleNamespace(root=root, params=params_file, p=p, prepared=prepared, config=config)


@pytest.fixture(autouse=True)
def _project(tracking_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the project root: resume state, cache, MLflow artifacts
    monkeypatch.delenv("DVC_ROOT", raising=False)


INPUT_FILES = {
    "prepared": "prepared",
    "sources": "sources.json",
    "model": "model.pt",
    "warmup_model": "model.pt",
    "train_model": "model.pt",
    "division": "division.npz",
    "issues": "label_issues.csv",
    "warmup_division": "division.npz",
    "train_division": "division.npz",
    "warmup_history": "no-history.csv",  # the report notes a missing history, it does not fail
    "train_history": "no-history.csv",
    "correct_history": "no-history.csv",
}


def stage_argv(ready, module, out, params=None, **inputs):
    """argv with the stage's inputs from `ready` (or `inputs`) and its outputs under `out`."""
    name = module.__name__.split(".")[-1]
    argv = ["--params", str(params or ready.params)]
    outputs = []
    for key, default in module.PATHS.items():
        if default in DVC_DEPS[name]:
            path = inputs.get(key, ready.root / INPUT_FILES[key])
        else:
            path = out / default
            outputs.append(path)
        argv += [f"--{key.replace('_', '-')}", str(path)]
    return argv, outputs


def fails(module, argv, capsys) -> str:
    """Run a stage that must fail: exit 2, one `error:` line, no traceback; returns the line."""
    with pytest.raises(SystemExit) as exc:
        module.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def files_under(path: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


# ----------------------------------------------------------------------------- the table


@dataclass
class Case:
    id: str
    stage: Any
    build: Callable[[Any, pathlib.Path], dict]  # (ready, tmp) -> {"params": .., input: path}
    message: str  # expected in the error line; {tmp} and {root} are filled in


def params_with(**overrides):
    def build(ready, tmp):
        return {"params": write_params(tmp / "params.yaml", {**SMALL, **overrides})}

    return build


def npz_source(**arrays):
    def build(ready, tmp):
        np.savez(tmp / "d.npz", **arrays)
        overrides = {**SMALL, "data.source": "npz", "data.path": str(tmp / "d.npz")}
        overrides.pop("data.subset")
        overrides["data.test_size"] = 6
        return {"params": write_params(tmp / "params.yaml", overrides)}

    return build


def labels_out_of_range():
    y = np.arange(30) % 3
    y[17] = 5
    return npz_source(x=np.zeros((30, 4, 4, 1), np.uint8), y=y, classes=np.array(["a", "b", "c"]))


def yaml_text(text):
    def build(ready, tmp):
        (tmp / "params.yaml").write_text(text)
        return {"params": tmp / "params.yaml"}

    return build


def missing_prepared(ready, tmp):
    return {"prepared": tmp / "nothing"}


def checkpoint(make):
    """An input checkpoint for every stage key that reads one."""

    def build(ready, tmp):
        path = tmp / "bad.pt"
        make(ready, path)
        return {"model": path, "warmup_model": path, "train_model": path}

    return build


def truncated_checkpoint(ready, path):
    data = (ready.root / "model.pt").read_bytes()
    path.write_bytes(data[: len(data) // 2])


class Payload:
    """Unpickling this (without weights_only) would create a file."""

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(PAYLOAD_MARKER),))


PAYLOAD_MARKER = "/tmp/noisyflow-test-pickle-payload-ran"


def pickle_payload(ready, path):
    payload = load_checkpoint(ready.root / "model.pt")
    payload["nets"] = [Payload(), Payload()]
    torch.save(payload, path)


def other_width(ready, path):
    config = replace(ready.config, width=ready.config.width * 2)
    nets = [create_model(config) for _ in range(2)]
    save_checkpoint(path, recipes.nets_payload(config, nets, ready.prepared, history=[]))


def one_network(ready, path):
    payload = load_checkpoint(ready.root / "model.pt")
    payload["nets"] = payload["nets"][:1]
    save_checkpoint(path, payload)


def not_a_checkpoint(ready, path):
    save_checkpoint(path, {"weights": torch.zeros(3)})


def division(make):
    def build(ready, tmp):
        path = tmp / "division.npz"
        make(ready, path)
        return {"division": path}

    return build


def short_division(ready, path):
    save_division(path, all_labelled(2, 10))


def object_division(ready, path):
    n = len(ready.prepared.labels)
    np.savez(
        path, clean_prob=np.array([None] * n), labelled=np.ones((2, n)), weight=np.ones((2, n))
    )


def division_without_labelled(ready, path):
    n = len(ready.prepared.labels)
    np.savez(path, clean_prob=np.ones((2, n)), weight=np.ones((2, n)), loss=np.ones((2, n)))


def issues(edit):
    """label_issues.csv with `edit(rows)` applied to its data rows (dicts)."""

    def build(ready, tmp):
        with open(ready.root / "label_issues.csv", newline="") as fh:
            reader = csv.DictReader(fh)
            fields, rows = list(reader.fieldnames), list(reader)
        fields, rows = edit(fields, rows)
        path = tmp / "label_issues.csv"
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        return {"issues": path}

    return build


def set_cell(row_no, column, value):
    def edit(fields, rows):
        rows[row_no][column] = value
        return fields, rows

    return issues(edit)


def drop_row(fields, rows):
    return fields, rows[:3] + rows[4:]


def duplicate_row(fields, rows):
    return fields, [*rows[:5], rows[2], *rows[6:]]


def drop_column(fields, rows):
    fields = [f for f in fields if f != "prototype_label"]
    return fields, [{k: v for k, v in r.items() if k in fields} for r in rows]


def a_test_row_index(ready):
    return int(ready.prepared.test.index[0])


CASES = [
    # params: any stage refuses the whole file before computing anything
    Case(
        "unknown-noise-type",
        prepare,
        params_with(**{"data.noise.type": "gaussian"}),
        "params.yaml: data.noise.type: unknown value 'gaussian'; expected one of none, "
        "symmetric, asymmetric, instance",
    ),
    Case(
        "zero-epochs",
        warmup,
        params_with(**{"train.epochs": 0}),
        "params.yaml: train.epochs: must be >= 1, got 0",
    ),
    Case(
        "p-threshold-one",
        codivide,
        params_with(**{"selection.gmm.p_threshold": 1.0}),
        "params.yaml: selection.gmm.p_threshold: must be < 1.0, got 1.0",
    ),
    Case(
        "prototype-temperature-zero",
        correct,
        params_with(**{"correction.prototype.prototype_temperature": 0}),
        "params.yaml: correction.prototype.prototype_temperature: must be > 0.0, got 0.0",
    ),
    Case(
        "typo-in-key",
        train,
        params_with(**{"train.epoch": 3}),
        "params.yaml: unknown key 'train.epoch' (did you mean 'train.epochs'?)",
    ),
    Case(
        "wrong-type",
        warmup,
        params_with(**{"warmup.batch_size": "64"}),
        "params.yaml: warmup.batch_size: expected an integer, got '64'",
    ),
    Case(
        "yaml-object-tag",
        prepare,
        yaml_text("seed: !!python/object/apply:os.getcwd []\n"),
        "{tmp}/params.yaml: not valid YAML",
    ),
    Case(
        "unknown-method",
        evaluate,
        params_with(**{"method.selection": "gmn"}),
        "method.selection: unknown 'gmn' (did you mean 'gmm'?)",
    ),
    # the user's data
    Case(
        "missing-data-file",
        prepare,
        lambda ready, tmp: params_with(
            **{"data.source": "npz", "data.path": str(tmp / "gone.npz")}
        )(ready, tmp),
        "{tmp}/gone.npz: not found; expected a file (data.path)",
    ),
    Case(
        "labels-outside-range",
        prepare,
        labels_out_of_range(),
        "{tmp}/d.npz 'y': row 17 has label 5, expected 0..2",
    ),
    Case(
        "images-and-labels-of-different-lengths",
        prepare,
        npz_source(x=np.zeros((30, 4, 4), np.uint8), y=np.arange(25) % 3),
        "{tmp}/d.npz: 30 images in 'x' but 25 labels in 'y'",
    ),
    Case(
        "object-array-source",
        prepare,
        npz_source(x=np.array([None] * 30), y=np.arange(30) % 3),
        "{tmp}/d.npz: not a readable .npz without pickle",
    ),
    # pipeline files
    Case(
        "missing-prepared-data",
        warmup,
        missing_prepared,
        "{tmp}/nothing: prepared data not found (run the prepare stage)",
    ),
    Case(
        "truncated-checkpoint",
        codivide,
        checkpoint(truncated_checkpoint),
        "{tmp}/bad.pt: not a valid noisyflow checkpoint",
    ),
    Case(
        "pickle-payload-checkpoint",
        train,
        checkpoint(pickle_payload),
        "{tmp}/bad.pt: not a valid noisyflow checkpoint",
    ),
    Case(
        "checkpoint-of-another-width",
        codivide,
        checkpoint(other_width),
        "{tmp}/bad.pt: made with model.arch=cnn, model.width=8, 2 network(s); params.yaml says "
        "cnn, 4, 2 (rerun the earlier stages)",
    ),
    Case(
        "checkpoint-with-one-network",
        correct,
        checkpoint(one_network),
        "{tmp}/bad.pt: made with model.arch=cnn, model.width=4, 1 network(s)",
    ),
    Case(
        "not-a-model-checkpoint",
        evaluate,
        checkpoint(not_a_checkpoint),
        "{tmp}/bad.pt: not a noisyflow model checkpoint",
    ),
    Case(
        "division-of-other-data",
        train,
        division(short_division),
        "{tmp}/division.npz: clean_prob has shape (2, 10), expected (1 or 2, 250)",
    ),
    Case(
        "division-with-object-arrays",
        correct,
        division(object_division),
        "{tmp}/division.npz: not a readable .npz without pickle",
    ),
    Case(
        "division-without-labelled",
        train,
        division(division_without_labelled),
        "{tmp}/division.npz: missing array(s) labelled",
    ),
    # a hand-edited label-issue table
    Case(
        "corrected-label-99",
        evaluate,
        set_cell(4, "corrected_label", "99"),
        "{tmp}/label_issues.csv, line 6: corrected_label 99 outside 0..9",
    ),
    Case(
        "is-label-issue-yes",
        evaluate,
        set_cell(0, "is_label_issue", "yes"),
        "{tmp}/label_issues.csv, line 2: is_label_issue 'yes' must be True or False",
    ),
    Case(
        "given-label-edited",
        evaluate,
        lambda ready, tmp: set_cell(
            1, "given_label", str((int(ready.prepared.train.labels[1]) + 1) % 10)
        )(ready, tmp),
        "{tmp}/label_issues.csv, line 3: given_label",
    ),
    Case(
        "quality-above-one",
        evaluate,
        set_cell(7, "label_quality", "1.5"),
        "{tmp}/label_issues.csv, line 9: label_quality 1.5 outside [0, 1]",
    ),
    Case(
        "index-not-a-number",
        evaluate,
        set_cell(2, "index", "x7"),
        "{tmp}/label_issues.csv, line 4: index 'x7' is not an integer",
    ),
    Case(
        "index-of-a-test-row",
        evaluate,
        lambda ready, tmp: set_cell(0, "index", str(a_test_row_index(ready)))(ready, tmp),
        "is not a training sample",
    ),
    Case("row-missing", evaluate, issues(drop_row), "1 training sample(s) missing, e.g. index"),
    Case("row-twice", evaluate, issues(duplicate_row), "label_issues.csv, line 7: index"),
    Case(
        "column-missing",
        evaluate,
        issues(drop_column),
        "{tmp}/label_issues.csv: missing column(s) prototype_label",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line_and_writes_nothing(case, ready, tmp_path, capsys):
    pathlib.Path(PAYLOAD_MARKER).unlink(missing_ok=True)
    built = case.build(ready, tmp_path)
    params = built.pop("params", None)
    out = tmp_path / "out"
    argv, outputs = stage_argv(ready, case.stage, out, params, **built)
    line = fails(case.stage, argv, capsys)
    expected = case.message.format(tmp=tmp_path, root=ready.root)
    assert expected in line
    assert not any(p.exists() for p in outputs)
    assert files_under(out) == []  # no stray temporaries either
    assert not pathlib.Path(PAYLOAD_MARKER).exists()  # nothing was unpickled


def test_a_failed_rerun_leaves_the_previous_outputs_untouched(ready, tmp_path, capsys):
    out = tmp_path / "out"
    argv, outputs = stage_argv(ready, evaluate, out)
    evaluate.main(argv)
    before = {p: p.read_bytes() for p in outputs}
    bad = set_cell(0, "corrected_label", "-1")(ready, tmp_path)
    argv, _ = stage_argv(ready, evaluate, out, **bad)
    assert "corrected_label -1 outside 0..9" in fails(evaluate, argv, capsys)
    assert {p: p.read_bytes() for p in outputs} == before


def test_label_issues_are_matched_by_index_not_by_position(ready, tmp_path):
    """A shuffled table scores exactly like the original."""
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    argv, _ = stage_argv(ready, evaluate, out_a)
    evaluate.main(argv)

    def shuffle(fields, rows):
        order = np.random.default_rng(0).permutation(len(rows))
        return fields, [rows[i] for i in order]

    shuffled = issues(shuffle)(ready, tmp_path)
    argv, _ = stage_argv(ready, evaluate, out_b, **shuffled)
    evaluate.main(argv)
    a = (out_a / "metrics.json").read_text()
    assert a == (out_b / "metrics.json").read_text()
    assert '"num_label_issues": 0.0' not in a  # the table does flag samples


# ----------------------------------------------------------------------------- library bugs


def test_checkpoint_of_another_class_count_is_refused(ready, tmp_path, capsys):
    config = replace(ready.config, num_classes=3)
    nets = [create_model(config) for _ in range(2)]
    save_checkpoint(tmp_path / "bad.pt", recipes.nets_payload(config, nets, ready.prepared))
    argv, _ = stage_argv(ready, codivide, tmp_path / "out", model=tmp_path / "bad.pt")
    assert f"{tmp_path}/bad.pt" in fails(codivide, argv, capsys)


def test_checkpoint_of_another_channel_count_is_refused(ready, tmp_path, capsys):
    config = replace(ready.config, in_channels=3, mean=(0.5,) * 3, std=(0.25,) * 3)
    nets = [create_model(config) for _ in range(2)]
    save_checkpoint(tmp_path / "bad.pt", recipes.nets_payload(config, nets, ready.prepared))
    argv, _ = stage_argv(ready, codivide, tmp_path / "out", model=tmp_path / "bad.pt")
    assert f"{tmp_path}/bad.pt" in fails(codivide, argv, capsys)


@pytest.mark.parametrize("what", ["prepared", "division"])
def test_truncated_npz_is_refused(what, ready, tmp_path, capsys):
    import shutil

    if what == "prepared":
        shutil.copytree(ready.root / "prepared", tmp_path / "prepared")
        target = tmp_path / "prepared" / "train.npz"
        inputs = {"prepared": tmp_path / "prepared"}
    else:
        target = tmp_path / "division.npz"
        shutil.copy(ready.root / "division.npz", target)
        inputs = {"division": target}
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    argv, _ = stage_argv(ready, train, tmp_path / "out", **inputs)
    assert f"{target}" in fails(train, argv, capsys)
