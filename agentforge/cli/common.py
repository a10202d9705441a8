"""Helpers commands share: the migrated engine, the user's identity, flow running."""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import subprocess
from collections.abc import Iterator
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
        # The in-process API (a subprocess that inherits this environment) logs through
        # ``prefect.server`` at its own level: when a command ends, its task-run recorder is
        # cancelled mid-flush and printed "Error flushing 1 events" with four tracebacks on the
        # command's stderr, though the command succeeded. Its start-up failures still surface
        # as the command's own error.
        os.environ["PREFECT_SERVER_LOGGING_LEVEL"] = "CRITICAL"
        os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
        # Prefect's background senders log "Still processing items: N items remaining..." while
        # they flush at exit, on loggers named after their class (outside ``prefect.*``): noise
        # on every lock/install/deploy; their errors still show.
        for name in ("EventsWorker", "APILogWorker"):
            logging.getLogger(name).setLevel(logging.ERROR)


def run_flow(fn: Any, /, **kwargs: Any) -> Any:
    """Run a Prefect flow in this process; a failed flow re-raises its error. Without flow-run
    heartbeats unless the user set their frequency (``flows.inprocess.without_heartbeats``: they
    made every in-process run wait up to a second at its end). Prefect is imported here, by the
    commands that run a flow, never by read-only ones."""
    engine()  # migrate (and start the embedded server) before Prefect spins up
    from deployments.prefect_server import RECOMMENDED_SERVER_ENV
    from flows.inprocess import start_in_process_api, without_heartbeats

    with _one_interrupt():
        start_in_process_api(RECOMMENDED_SERVER_ENV)  # the batched recorders, as for a server of one's own
        with without_heartbeats():
            return fn(**kwargs)


@contextlib.contextmanager
def _one_interrupt() -> Iterator[None]:
    """Ctrl-C interrupts the flow once; further presses are ignored while the command winds down
    (the flow records its end and Prefect stops its in-process server: seconds). A second press
    used to land in that clean-up (in a pydantic serialiser or Prefect's exit handler) and end
    the command with a traceback or an INTERNAL_ERROR instead of `Interrupted.`."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def first(_signum: int, _frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is first:  # not interrupted: as before
            signal.signal(signal.SIGINT, signal.default_int_handler)
