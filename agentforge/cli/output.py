"""Console output shared by every command: tables or JSON, errors in the house format."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from rich.console import Console
from rich.table import Table

from agentforge.errors import AgentForgeError, redact


@dataclass
class OutputState:
    json: bool = False
    verbose: bool = False


STATE = OutputState()
# Not a terminal (pipes, CI, tests): no hard wrapping at 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _default(obj: Any) -> Any:
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, UUID):
        return str(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    return str(obj)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=_default, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def emit(data: Any, human: Any = None) -> None:
    """Print ``data`` as JSON under --json, else the rich renderable/str ``human`` (or data)."""
    if STATE.json:
        print_json(data)
    else:
        console.print(human if human is not None else data)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> Table:
    t = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
    return t


def print_error(exc: BaseException) -> int:
    """Print an error in the house format; return the exit code."""
    if isinstance(exc, AgentForgeError):
        if STATE.json:
            sys.stdout.write(json.dumps({"error": exc.to_dict()}, default=_default, sort_keys=True) + "\n")
        err_console.print(f"[bold red]agentforge: {exc.code}[/]", markup=True)
        err_console.print(redact(exc.message), markup=False)
        if exc.hint:
            err_console.print(f"Hint: {redact(exc.hint)}", markup=False)
        if STATE.verbose:
            err_console.print("".join(traceback.format_exception(exc)), markup=False)
        return exc.exit_code
    err_console.print("[bold red]agentforge: INTERNAL_ERROR[/]", markup=True)
    err_console.print(redact(f"{type(exc).__name__}: {exc}"), markup=False)
    if STATE.verbose:
        err_console.print(redact("".join(traceback.format_exception(exc))), markup=False)
    else:
        err_console.print("Hint: run again with --verbose for the traceback, and report it.", markup=False)
    return 1
