"""Console output shared by every command: tables, JSON or YAML, errors in the house format.

The format is ``--json`` when given, else the ``output_format`` setting (environment >
database > config file > default ``table``; see :mod:`agentforge.services.settings`). The
database is consulted at most once per process, and only when the command has already opened
it (so a command that needs no database never opens one for its output); the answer is kept.
``json`` and ``yaml`` both make ``STATE.json`` true, which is what commands test to choose
machine output; :func:`emit` then writes YAML instead of JSON for ``yaml``.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from rich.console import Console
from rich.segment import Segment
from rich.table import Table

from agentforge.errors import AgentForgeError, redact

_FORMATS = ("table", "json", "yaml")


class OutputState:
    """Global output flags; ``json``/``verbose`` fall back to the settings when no flag was given.

    ``STATE.json = True`` sets the --json flag, except when it only writes back what was just
    read (``STATE.json = STATE.json or flag`` in a callback): that is a no-op, so an
    ``output_format = yaml`` setting is not turned into JSON by it.
    """

    def __init__(self) -> None:
        self._json_flag = False
        self._verbose_flag = False
        self._format: str | None = None      # resolved output_format, once final
        self._verbose: bool | None = None
        self._last_json: bool | None = None  # what the getter last answered
        self._last_verbose: bool | None = None

    @property
    def json(self) -> bool:
        self._last_json = self.format != "table"
        return self._last_json

    @json.setter
    def json(self, value: bool) -> None:
        if bool(value) == self._last_json and not self._json_flag:
            return
        self._json_flag = bool(value)

    @property
    def verbose(self) -> bool:
        if self._verbose_flag:
            self._last_verbose = True
            return True
        if self._verbose is None:
            value, final = _setting("verbose_logging")
            if not final:
                self._last_verbose = bool(value)
                return self._last_verbose
            self._verbose = bool(value)
        self._last_verbose = self._verbose
        return self._verbose

    @verbose.setter
    def verbose(self, value: bool) -> None:
        if bool(value) == self._last_verbose and not self._verbose_flag:
            return
        self._verbose_flag = bool(value)

    @property
    def format(self) -> str:
        """table | json | yaml."""
        if self._json_flag:
            return "json"
        if self._format is None:
            value, final = _setting("output_format")
            text = str(value).lower() if str(value).lower() in _FORMATS else "table"
            if not final:
                return text
            self._format = text
        return self._format

    def reset(self) -> None:
        """Forget flags and resolved settings (tests that run several commands in one process)."""
        self.__init__()  # type: ignore[misc]


def _light_setting(key: str) -> tuple[object, bool]:
    """Environment, then the config file: no database, no heavy imports (before the DB is open)."""
    import os

    env = os.environ.get(f"AGENTFORGE_{key.upper()}")
    if env is not None:
        return (env.strip().lower() in ("1", "true", "yes", "on") if key == "verbose_logging" else env), True
    from agentforge.config import default_config_file

    path = default_config_file()
    if path.is_file():
        import tomllib

        try:
            value = tomllib.loads(path.read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError):
            value = None
        if value is not None:
            return value, False
    return (False if key == "verbose_logging" else "table"), False


def _setting(key: str) -> tuple[object, bool]:
    """(value, final): ``final`` once the database was consulted, or the environment decided."""
    try:
        from agentforge.cli import common

        value, final = _light_setting(key)
        if final or common.engine.cache_info().currsize == 0:
            return value, final
        from sqlalchemy.orm import Session

        from agentforge.services.settings import resolve

        with Session(common.engine()) as session:
            return resolve(key, session=session).value, True
    except Exception:  # output must never fail because a setting cannot be read
        return (False if key == "verbose_logging" else "table"), True


STATE = OutputState()
# Not a terminal (pipes, CI, tests): no hard wrapping at 80 columns.
class _Console(Console):
    """rich's Console, except that a :class:`PlainTable` is written straight to the output: rich
    would still crop every one of its (thousands of) lines in Python."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if len(objects) == 1 and isinstance(objects[0], PlainTable) and not kwargs and not self.record:
            self.file.write(objects[0].text())
            self.file.flush()
            return
        super().print(*objects, **kwargs)


console = _Console(highlight=False, width=None if sys.stdout.isatty() else 200)
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


def print_yaml(data: Any) -> None:
    import yaml

    plain = json.loads(json.dumps(data, default=_default))  # the same values JSON would show
    sys.stdout.write(yaml.safe_dump(plain, sort_keys=True, allow_unicode=True, default_flow_style=False))
    sys.stdout.flush()


def emit(data: Any, human: Any = None) -> None:
    """Print ``data`` as JSON (--json / output_format json) or YAML, else the rich renderable/str
    ``human`` (or data)."""
    fmt = STATE.format
    if fmt == "yaml":
        print_yaml(data)
    elif fmt == "json":
        print_json(data)
    else:
        console.print(human if human is not None else data)


#: Above this many rows a table is printed as plain aligned columns: rich's table layout
#: measures and wraps every cell in Python and took ~90% of `agentforge ls` over 10,000 rows.
PLAIN_TABLE_ROWS = 500


class PlainTable:
    """Aligned columns written line by line (no measuring, wrapping or box drawing)."""

    def __init__(self, columns: Sequence[str], rows: list[list[str]], title: str | None) -> None:
        self.columns, self.rows, self.title = list(columns), rows, title

    def lines(self) -> list[str]:
        widths = [max([len(c), *(len(r[i]) for r in self.rows)]) for i, c in enumerate(self.columns)]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() + "\n"

        out = [self.title + "\n"] if self.title else []
        out.append(line(self.columns))
        out.append(line(["-" * w for w in widths]))
        out.extend(line(row) for row in self.rows)
        return out

    def text(self) -> str:
        return "".join(self.lines())

    def __rich_console__(self, console: Any, options: Any) -> Iterable[Segment]:
        for line in self.lines():
            yield Segment(line)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> Table | PlainTable:
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if len(cells) > PLAIN_TABLE_ROWS:
        return PlainTable(columns, cells, title)
    t = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in cells:
        t.add_row(*row)
    return t


def _as_user_error(exc: BaseException) -> BaseException:
    """A failed file operation on a path the user named (a directory given as a file, a file as a
    directory, no permission, …) is a user error naming that path, not an internal one."""
    if isinstance(exc, OSError) and not isinstance(exc, AgentForgeError) and exc.filename and exc.strerror:
        return AgentForgeError(f"{exc.filename}: {exc.strerror.lower()}", code="FILE_ERROR",
                               hint="Check the path (an existing file or folder of the right kind, with the "
                                    "permissions needed) and run the command again.")
    return exc


def print_error(exc: BaseException) -> int:
    """Print an error in the house format; return the exit code."""
    exc = _as_user_error(exc)
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
