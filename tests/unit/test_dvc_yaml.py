"""dvc.yaml agrees with the stage modules: each stage's `params:` list is exactly the module's
READS (so DVC reruns a stage exactly when a key it reads changes), its command runs the module,
its data paths are the module's PATHS defaults, and every stage module is in the pipeline."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = DVC["stages"]
SECTIONS = ("deps", "outs", "metrics", "plots")


def entries(stage: dict, section: str) -> list[str]:
    """Paths of one section; entries are plain paths or {path: options}."""
    out = []
    for item in stage.get(section, []):
        out.extend(item if isinstance(item, dict) else [item])
    return [str(p) for p in out]


def is_code(path: str) -> bool:
    """A dependency on source code rather than on data: the package or a stage module."""
    return path == "noisyflow" or (path.startswith("stages/") and path.endswith(".py"))


def stage_modules() -> list[str]:
    """Modules under stages/ that are stages: a `main` entry point with PATHS."""
    names = []
    for path in sorted((REPO / "stages").glob("*.py")):
        module = importlib.import_module(f"stages.{path.stem}")
        if callable(getattr(module, "main", None)) and hasattr(module, "PATHS"):
            names.append(path.stem)
    return names


def test_stage_modules_are_found():
    assert stage_modules() == sorted(
        ["sources", "prepare", "warmup", "codivide", "train", "correct", "evaluate"]
    )


def test_every_stage_module_is_a_dvc_stage_and_vice_versa():
    assert sorted(STAGES) == stage_modules()


@pytest.mark.parametrize(
    "name",
    STAGES,
)
def test_params_list_is_the_modules_reads(name):
    module = importlib.import_module(f"stages.{name}")
    assert STAGES[name].get("params", []) == list(module.READS)
    assert all(isinstance(r, str) for r in module.READS)


@pytest.mark.parametrize("name", list(STAGES))
def test_cmd_runs_the_stage_module(name):
    assert STAGES[name]["cmd"] == f"python -m stages.{name}"


@pytest.mark.parametrize("name", list(STAGES))
def test_paths_defaults_are_the_stages_data_paths(name):
    module = importlib.import_module(f"stages.{name}")
    declared = {p for section in SECTIONS for p in entries(STAGES[name], section)}
    data = {p for p in declared if not is_code(p)}
    defaults = set(module.PATHS.values())
    assert defaults == data, (
        f"in PATHS only: {sorted(defaults - data)}; in dvc.yaml only: {sorted(data - defaults)}"
    )
    # CLI options are the PATHS keys: --<key with dashes>
    parser = importlib.import_module("stages.common").parser(name, module.PATHS)
    args = parser.parse_args([])
    assert {k: str(getattr(args, k)) for k in module.PATHS} == module.PATHS


@pytest.mark.parametrize("name", list(STAGES))
def test_no_path_is_both_input_and_output(name):
    deps = set(entries(STAGES[name], "deps"))
    produced = {p for s in ("outs", "metrics", "plots") for p in entries(STAGES[name], s)}
    assert not deps & produced


def test_every_data_dependency_is_produced_by_exactly_one_earlier_stage():
    produced: dict[str, str] = {}
    for name, stage in STAGES.items():
        for dep in entries(stage, "deps"):
            if not is_code(dep):
                assert dep in produced, f"{name} depends on {dep}, which no earlier stage makes"
        for section in ("outs", "metrics", "plots"):
            for path in entries(stage, section):
                assert path not in produced, f"{path} produced by {produced[path]} and {name}"
                produced[path] = name


def imported_stage_modules(name: str, seen: set[str] | None = None) -> set[str]:
    """stages.* modules `name` imports, transitively (by reading the source)."""
    seen = seen if seen is not None else set()
    tree = ast.parse((REPO / "stages" / f"{name}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stages."):
            dep = node.module.split(".", 1)[1]
            if dep not in seen:
                seen.add(dep)
                imported_stage_modules(dep, seen)
    return seen


@pytest.mark.parametrize("name", [n for n in STAGES if not STAGES[n].get("always_changed")])
def test_code_dependencies_cover_what_the_stage_runs(name):
    deps = set(entries(STAGES[name], "deps"))
    expected = {f"stages/{name}.py", "noisyflow"}
    expected |= {f"stages/{m}.py" for m in imported_stage_modules(name)}
    assert expected <= deps, f"missing code deps: {sorted(expected - deps)}"
    assert {d for d in deps if is_code(d)} == expected  # and no stale ones


def test_plot_fields_name_columns_the_stages_write():
    """The plot definitions point at CSVs a stage declares (as plots, or as cached outputs,
    which travel with DVC experiments so `dvc plots diff` between them works)."""
    plots = {
        p for stage in STAGES.values() for kind in ("plots", "outs") for p in entries(stage, kind)
    }
    for item in DVC.get("plots", []):
        if isinstance(item, str):  # an image plot, listed by its path
            assert item in plots, item
            continue
        for spec in item.values():
            for path in spec.get("y", {}):
                assert path in plots, path
