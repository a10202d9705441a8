"""The `agentforge` entry point: global flags, subcommands, and the error boundary."""

from __future__ import annotations

import os
import sys

import typer

from agentforge import __version__
from agentforge.cli import setup_cmds
from agentforge.cli.output import STATE, print_error

app = typer.Typer(
    name="agentforge",
    help="Git-native package manager and deployment orchestrator for AI agent components.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agentforge {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    json_output: bool = typer.Option(False, "--json", help="Machine-readable JSON output (any position)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks and flow logs (any position)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    STATE.json = STATE.json or json_output
    STATE.verbose = STATE.verbose or verbose


app.command("init")(setup_cmds.init)
app.command("doctor")(setup_cmds.doctor)
app.add_typer(setup_cmds.db_app, name="db")


def _register_optional() -> None:
    """Command groups built in other modules; each imports nothing heavy at module level."""
    from agentforge.cli import register

    register(app)


def _is_usage_error(exc: BaseException) -> bool:
    """click's own exceptions, or the copy of click that newer typer versions bundle."""
    import click

    classes: list[type] = [click.exceptions.ClickException]
    try:
        from typer._click import exceptions as bundled  # typer >= 0.26 vendors click

        classes.append(bundled.ClickException)
    except ImportError:
        pass
    return isinstance(exc, tuple(classes))


def run() -> None:
    # --json / --verbose are global and accepted anywhere on the line (before a bare "--").
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    head, tail = argv[:cut], argv[cut:]
    if "--json" in head:
        STATE.json = True
        head = [a for a in head if a != "--json"]
    if "--verbose" in head or "-v" in head:
        STATE.verbose = True
        head = [a for a in head if a not in ("--verbose", "-v")]
    _register_optional()
    try:
        # Without standalone mode click returns a typer.Exit's code instead of exiting.
        code = app(args=head + tail, prog_name="agentforge", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.stderr.write("Aborted.\n")
        sys.exit(1)
    except KeyboardInterrupt:
        _interrupted()
        sys.exit(130)
    except Exception as exc:
        if _is_usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            if STATE.json:  # --json promises JSON on stdout, for a usage error too
                import json

                message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
                sys.stdout.write(json.dumps({"error": {"code": "USAGE_ERROR", "message": message,
                                                       "hint": "`agentforge --help` lists the commands; "
                                                               "`agentforge COMMAND --help` their options."}}) + "\n")
            sys.exit(getattr(exc, "exit_code", 2))
        sys.exit(print_error(exc))
    if code == 130:
        # Ctrl-C: typer turns the KeyboardInterrupt into exit code 130 before it reaches us.
        _interrupted()
    sys.exit(code if isinstance(code, int) else 0)


def _interrupted() -> None:
    hint = "Run the command again: it picks up where this run stopped."
    sys.stderr.write(f"Interrupted.\n{hint}\n")
    if STATE.json:
        import json

        sys.stdout.write(json.dumps({"error": {"code": "INTERRUPTED", "message": "interrupted", "hint": hint}}) + "\n")


def entry() -> None:
    """The console script (and ``python -m agentforge.cli.main``): :func:`run`, then exit without
    the interpreter's tear-down.

    Freeing every module at exit (SQLAlchemy's, pydantic's, rich's…) took about 0.3 s after each
    command had done its work and written its output: a third of `agentforge ls` on 10,000
    components (bench/read_path.py). What a normal exit runs first still runs, in the same
    order: threads are joined (``threading._shutdown``, which also stops idle thread pools), then
    the ``atexit`` handlers (Prefect stopping its in-process server, logging, temporary folders,
    coverage), then stdout and stderr are flushed. Where ``threading._shutdown`` is missing
    (another Python) the interpreter exits as usual.
    """
    try:
        run()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    _exit_now(code)


def _exit_now(code: object) -> None:
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None or threading.current_thread() is not threading.main_thread():
        sys.exit(code)  # type: ignore[arg-type]  # pragma: no cover - another Python: the usual exit
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, status 1
        sys.stderr.write(f"{code}\n")
        status = 1
    shutdown()
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a closed pipe (`agentforge ls | head`): nothing to add
            pass
    os._exit(status)


if __name__ == "__main__":
    entry()
