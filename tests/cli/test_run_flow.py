"""How the CLI runs a flow in its own process: flow-run heartbeats off unless the user set them."""

from __future__ import annotations

import pytest


def _heartbeat_seen_by_a_flow() -> object:
    from prefect import flow
    from prefect.settings import get_current_settings

    @flow(name="test-heartbeat-setting")
    def probe() -> object:
        return get_current_settings().flows.heartbeat_frequency

    from agentforge.cli.common import run_flow

    return run_flow(probe)


def test_in_process_flows_run_without_heartbeats(clean_db, prefect_api: None, monkeypatch) -> None:
    for name in ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"):
        monkeypatch.delenv(name, raising=False)
    assert _heartbeat_seen_by_a_flow() is None
    from prefect.settings import get_current_settings

    assert get_current_settings().flows.heartbeat_frequency == 180  # only for the run, not after it


@pytest.mark.parametrize("variable", ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"])
def test_a_heartbeat_frequency_the_user_set_is_kept(clean_db, prefect_api: None, monkeypatch, variable) -> None:
    monkeypatch.setenv(variable, "45")
    from prefect.settings import temporary_settings

    # The variable is read when settings are built; build them anew as a new process would.
    with temporary_settings(updates={"flows.heartbeat_frequency": 45}):
        assert _heartbeat_seen_by_a_flow() == 45
