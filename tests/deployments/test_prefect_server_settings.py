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
    defaults = Settings().server.services
    for name, value in RECOMMENDED_SERVER_ENV.items():
        monkeypatch.setenv(name, value)
    tuned = Settings().server.services
    # A renamed setting would be ignored silently: the value would stay Prefect's default.
    for service in (tuned.task_run_recorder, tuned.event_persister):
        assert (service.batch_size, service.read_batch_size, service.flush_interval) == (200, 200, 1.0)
    assert tuned.triggers.read_batch_size == 200
    for name in ("task_run_recorder", "event_persister"):
        before, after = getattr(defaults, name), getattr(tuned, name)
        assert (before.batch_size, before.flush_interval) != (after.batch_size, after.flush_interval)
    assert defaults.triggers.read_batch_size != tuned.triggers.read_batch_size


def test_the_module_prints_them_for_env() -> None:
    out = subprocess.run([sys.executable, "-m", "deployments.prefect_server"], capture_output=True, text=True,
                         check=True).stdout.split()
    assert dict(item.split("=", 1) for item in out) == RECOMMENDED_SERVER_ENV
