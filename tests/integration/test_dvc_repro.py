"""`dvc repro` for real in a temporary git repo with tiny params: all stages run, a second
repro does nothing (but fingerprint the sources), a param reruns exactly the stages that read
it, editing a user's data file reruns `prepare`, and a forced rerun is byte-identical."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.helpers import dvc, make_dvc_project, subprocess_env

STAGES = ["sources", "prepare", "warmup", "codivide", "train", "correct", "evaluate"]
CONTRACT = [
    "test_accuracy",
    "detection_f1",
    "detection_auroc",
    "correction_accuracy",
    "estimated_noise_rate",
]

pytestmark = pytest.mark.integration


def ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_dvc_project(tmp_path_factory.mktemp("dvc") / "proj")
    env = subprocess_env(MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}")
    first = dvc(root, "repro", env=env)
    return root, env, first.stdout


def test_first_repro_runs_every_stage_in_order(project):
    root, _, out = project
    assert ran(out) == STAGES
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)
    for path in ("data/prepared/meta.json", "models/train.pt", "outputs/label_issues.csv"):
        assert (root / path).is_file(), path


def test_metrics_show_has_the_contract_keys(project):
    root, env, _ = project
    shown = json.loads(dvc(root, "metrics", "show", "--json", env=env).stdout)
    metrics = next(iter(shown.values()))["data"]["metrics.json"]["data"]
    assert set(CONTRACT) <= set(metrics)
    assert all(0 <= metrics[k] <= 1 for k in CONTRACT)


def test_second_repro_does_nothing(project):
    root, env, _ = project
    out = dvc(root, "repro", env=env).stdout
    assert ran(out) == ["sources"]  # always runs (a fingerprint), and changes nothing
    assert "didn't change, skipping" in out


def test_train_param_change_reruns_only_train_and_downstream(project):
    root, env, _ = project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["lr"] = 0.02
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc(root, "repro", env=env).stdout
    assert ran(out) == ["sources", "train", "correct", "evaluate"]


def set_param(root, key: str, value) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    *path, leaf = key.split(".")
    node = params
    for part in path:
        node = node[part]
    node[leaf] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_method_param_reruns_exactly_the_stages_that_read_it(project):
    root, env, _ = project
    set_param(root, "ssl.fixmatch.threshold", 0.9)  # fixmatch is not the chosen ssl
    assert ran(dvc(root, "repro", env=env).stdout) == ["sources"]
    set_param(root, "selection.gmm.p_threshold", 0.6)  # read by codivide and train only
    out = dvc(root, "repro", env=env).stdout
    assert ran(out) == ["sources", "codivide", "train", "correct", "evaluate"]


def test_stages_of_one_repro_share_one_mlflow_parent(project):
    import mlflow

    root, _, _ = project
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("noisyflow")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("noisyflow.kind") == "pipeline"]
    children = {
        p.info.run_id: [r for r in runs if r.data.tags.get("mlflow.parentRunId") == p.info.run_id]
        for p in parents
    }
    sizes = sorted(len(c) for c in children.values())
    assert sizes == [3, 4, 6]  # all six stages; train and after; codivide and after
    for kids in children.values():
        assert all(k.data.tags["stage"] in STAGES and k.info.status == "FINISHED" for k in kids)


def test_editing_a_users_data_file_reruns_prepare(tmp_path):
    """The user's npz is not in dvc.yaml (its path is a param): the `sources` fingerprint makes
    an edit in place rerun `prepare` instead of leaving stale results up to date."""
    import numpy as np

    root = make_dvc_project(
        tmp_path / "proj",
        {"data.source": "npz", "data.path": "mine.npz", "data.test_size": 20},
    )
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (120, 8, 8, 1), dtype=np.uint8)
    y = np.repeat(np.arange(3), 40)
    np.savez(root / "mine.npz", x=x, y=y, classes=np.array(["a", "b", "c"]))
    env = subprocess_env(MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}")
    assert ran(dvc(root, "repro", "prepare", env=env).stdout) == ["sources", "prepare"]
    assert ran(dvc(root, "repro", "prepare", env=env).stdout) == ["sources"]
    y[0] = 2  # one label corrected in place
    np.savez(root / "mine.npz", x=x, y=y, classes=np.array(["a", "b", "c"]))
    assert ran(dvc(root, "repro", "prepare", env=env).stdout) == ["sources", "prepare"]
