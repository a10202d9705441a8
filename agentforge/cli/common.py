"""Helpers commands share: the migrated engine, the user's identity, flow running."""

from __future__ import annotations

import getpass
import os
import subprocess
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

from agentforge.config import get_settings


@lru_cache(maxsize=1)
def engine() -> Engine:
    """The configured database, migrated to the code's head (auto-upgrade; newer → error)."""
    from sqlalchemy import exc as sa_exc

    from agentforge.db import get_engine, unreachable_error
    from models.migrate import ensure_schema

    eng = get_engine(get_settings())
    try:
        ensure_schema(eng, auto_upgrade=True)
    except sa_exc.OperationalError as exc:
        raise unreachable_error(eng.url, exc) from None
    return eng


def git_identity() -> tuple[str | None, str | None]:
    def read(key: str) -> str | None:
        try:
            out = subprocess.run(["git", "config", "--get", key], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() or None

    return read("user.name"), read("user.email")


def current_user_id() -> str:
    return os.environ.get("AGENTFORGE_USER") or getpass.getuser()


def prepare_prefect(*, quiet: bool = True) -> None:
    """Environment for Prefect, set before its first import: quiet unless --verbose, no telemetry.

    ``quiet=False`` (long-running workers: `serve`, `webhook serve`) keeps Prefect's own logging
    settings, so their run logs show what each worker did."""
    from agentforge.cli.output import STATE

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # The in-process API takes ~5 s to start on an idle machine; far longer on a loaded one.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if quiet and not STATE.verbose:
        # A failing task is logged by Prefect at ERROR with a traceback; the CLI prints the same
        # error itself as `agentforge: CODE` + hint, so without --verbose Prefect logs only CRITICAL.
        os.environ["PREFECT_LOGGING_LEVEL"] = "CRITICAL"
        os.environ["PREFECT_LOGGING_LOGGERS_PREFECT_LEVEL"] = "CRITICAL"
        os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")


HEARTBEAT_ENV = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")


def run_flow(fn: Any, /, **kwargs: Any) -> Any:
    """Run a Prefect flow in this process; a failed flow re-raises its error.

    Without flow-run heartbeats unless the user set their frequency: Prefect (3.9) sends them
    from a thread that polls its stop flag once a second, and a finishing flow run joins it, so
    every in-process run waited up to a second at its end (about 0.5 s on average) for
    nothing. Heartbeats let a server mark the run of a vanished *worker* as crashed; here the
    run lives and ends with this command, which reports its outcome itself. Served deployments
    (`agentforge serve`) keep Prefect's heartbeats.
    """
    engine()  # migrate (and start the embedded server) before Prefect spins up
    if any(os.environ.get(name) for name in HEARTBEAT_ENV):
        return fn(**kwargs)
    import prefect.context

    # What prefect.settings.temporary_settings does, minus its re-validation of every setting
    # (~0.08 s, each run): a copy of the current settings with the one field changed.
    current = prefect.context.get_settings_context()
    flows = current.settings.flows.model_copy(update={"heartbeat_frequency": None})
    settings = current.settings.model_copy(update={"flows": flows})
    with prefect.context.SettingsContext(profile=current.profile, settings=settings):
        return fn(**kwargs)
