from __future__ import annotations

import logging
import os

import pytest

os.environ.setdefault("NOISYFLOW_THREADS", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def pytest_unconfigure(config: pytest.Config) -> None:
    """A Prefect temporary server still running when the tests end is stopped by the atexit
    hook Prefect registers when it starts one, which logs "Stopping temporary server" through
    a console handler bound to pytest's already-closed output: a `--- Logging error ---`
    traceback after the summary of `make test`. Its logger ("prefect" itself, not a child)
    has nothing left to say once the tests are done."""
    logging.getLogger("prefect").disabled = True


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One local sqlite tracking store for the session (creating a DB costs seconds)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    return uri


@pytest.fixture
def tracking_env(monkeypatch: pytest.MonkeyPatch, mlflow_store: str) -> str:
    """Point MLflow at the session store for in-process stage calls."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    monkeypatch.delenv("NOISYFLOW_RUN_GROUP", raising=False)
    return mlflow_store
