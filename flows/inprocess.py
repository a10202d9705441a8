"""Running a flow inside the calling process (what the CLI does), as opposed to a served deployment."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import prefect.context

#: Setting either one means the user wants heartbeats; then the run is left as Prefect makes it.
HEARTBEAT_ENV = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")


@contextlib.contextmanager
def without_heartbeats() -> Iterator[None]:
    """Flow runs started inside this block send no flow-run heartbeats, unless the user set their frequency.

    Prefect (3.9) sends them from a thread that polls its stop flag once a second, and a finishing
    flow run joins it, so every in-process run waited up to a second at its end (about 0.5 s on
    average) for nothing. Heartbeats let a server mark the run of a vanished *worker* as crashed;
    an in-process run lives and ends with its command, which reports the outcome itself. Served
    deployments (`agentforge serve`) keep Prefect's heartbeats.

    What ``prefect.settings.temporary_settings`` does, minus its re-validation of every setting
    (~0.08 s a run): a copy of the current settings with the one field changed.
    """
    if any(os.environ.get(name) for name in HEARTBEAT_ENV):
        yield
        return
    current = prefect.context.get_settings_context()
    flows = current.settings.flows.model_copy(update={"heartbeat_frequency": None})
    settings = current.settings.model_copy(update={"flows": flows})
    with prefect.context.SettingsContext(profile=current.profile, settings=settings):
        yield
