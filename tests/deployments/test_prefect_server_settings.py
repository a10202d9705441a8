"""The Prefect server settings the docs recommend are settings Prefect reads, with our values."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deployments.prefect_server import RECOMMENDED_SERVER_ENV


def test_every_recommended_variable_is_read_by_prefect(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import Settings

    for name in RECOMMENDED_SERVER_ENV:
        monkeypatch.delenv(name, raising=False)
    defaults = Settings().server.services.task_run_recorder
    for name, value in RECOMMENDED_SERVER_ENV.items():
        monkeypatch.setenv(name, value)
    tuned = Settings().server.services.task_run_recorder
    # A renamed setting would be ignored silently: the value would stay Prefect's default.
    assert (tuned.batch_size, tuned.read_batch_size, tuned.flush_interval) == (200, 200, 1.0)
    assert (defaults.batch_size, defaults.flush_interval) != (tuned.batch_size, tuned.flush_interval)


def test_the_module_prints_them_for_env() -> None:
    out = subprocess.run([sys.executable, "-m", "deployments.prefect_server"], capture_output=True, text=True,
                         check=True).stdout.split()
    assert dict(item.split("=", 1) for item in out) == RECOMMENDED_SERVER_ENV
