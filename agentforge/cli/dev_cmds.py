"""The local development loop: `edit`, `status`, `diff`, `history`, `revert`, `pull`, `resolve`,
`component new` and `lint`. Only `pull` imports Prefect (inside the command)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from agentforge.cli.common import engine, prepare_prefect, run_flow
from agentforge.cli.output import STATE, console, emit, table

component_app = typer.Typer(help="Create components.", no_args_is_help=True)


def _short(commit: str | None) -> str:
    return commit[:12] if commit else ""


def _value(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def edit(
    component: str = typer.Argument(..., help="Installed component (REPO/NAME when ambiguous)"),
    set_: list[str] = typer.Option([], "--set", help="PATH=VALUE (value read as YAML; repeatable)"),
    unset: list[str] = typer.Option([], "--unset", help="PATH to remove (repeatable)"),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the history)"),
) -> None:
    """Change the local definition and the installed component.yaml together (validated first)."""
    from agentforge.services.devloop import edit_component

    engine()
    out = edit_component(component, sets=set_, unsets=unset, reason=reason)
    emit(out.model_dump(), "\n".join([f"{out.name}: {len(out.changes)} field(s) changed → {out.sync_status}"] +
                                     [f"  {c['change']:<6} {c['field']}: {_value(c['old'])} → {_value(c['new'])}"
                                      for c in out.changes]))


def status(json_output: bool = typer.Option(False, "--json", help="JSON output")) -> None:
    """Installed components: sync status, commits, last sync, local changes (direct edits folded in)."""
    from agentforge.core.gcpause import collector_paused
    from agentforge.services.devloop import status as status_svc

    STATE.json = STATE.json or json_output
    with collector_paused():  # printing 10,000 lines allocates as much again as the status itself
        engine()
        lines = status_svc()
        if STATE.json:
            emit([line.model_dump(mode="json") for line in lines])
            return
        if not lines:
            console.print("No installed components. `agentforge install NAME` installs one.")
            return
        console.print(table(
            ["component", "repository", "version", "status", "installed", "upstream", "last sync", "local changes"],
            [(line.name, line.repository or "-", line.version or "-", line.sync_status, _short(line.installed_commit),
              (_short(line.upstream_commit) + (f" ({line.upstream_version})" if line.upstream_version else "")),
              f"{line.last_sync:%Y-%m-%d %H:%M}" if line.last_sync else "", line.local_changes) for line in lines]))
        for line in lines:
            if line.warning:
                console.print(f"⚠ {line.name}: {line.warning}", markup=False)


def diff(component: str = typer.Argument(...)) -> None:
    """Field-level changes and a unified diff of the files against the installed original."""
    from agentforge.services.devloop import diff_component

    engine()
    out = diff_component(component)
    if STATE.json:
        emit(out.model_dump())
        return
    if not out.fields and not out.files:
        console.print(f"{component}: no local changes (at {out.commit[:12]})")
        return
    for c in out.fields:
        console.print(f"{c['change']:<6} {c['field']}: {_value(c['old'])} → {_value(c['new'])}", markup=False)
    for text in out.files.values():
        console.print(text, markup=False, end="", highlight=False)


def history(component: str = typer.Argument(...),
            snapshots: bool = typer.Option(False, "--snapshots", help="Also show whole-document trigger rows"),
            limit: int = typer.Option(200, "--limit")) -> None:
    """Every recorded change of COMPONENT, newest first."""
    from agentforge.services.devloop import component_history

    engine()
    lines = component_history(component, include_snapshots=snapshots, limit=limit)
    if STATE.json:
        emit([line.model_dump(mode="json") for line in lines])
        return
    console.print(table(["when", "change", "field", "old", "new", "author", "reason", "version"],
                        [(f"{h.timestamp:%Y-%m-%d %H:%M:%S}", h.change_type, h.field_path, _value(h.old_value),
                          _value(h.new_value), h.author or "", h.reason or "", h.version) for h in lines]))


def revert(component: str = typer.Argument(...),
           field: str | None = typer.Option(None, "--field", help="Revert only this field path"),
           reason: str | None = typer.Option(None, "--reason")) -> None:
    """Undo local changes (all of them, or one field)."""
    from agentforge.services.devloop import revert_component

    engine()
    out = revert_component(component, field=field, reason=reason)
    emit(out.model_dump(), f"{out.name}: reverted {len(out.changes)} change(s) → {out.sync_status}")


def pull(
    component: str = typer.Argument(...),
    to: str | None = typer.Option(None, "--to", help="Version to move to (default: the newest release)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard local changes and take upstream"),
    stash: bool = typer.Option(False, "--stash", help="Keep local changes aside, update, then reapply them"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before --overwrite"),
) -> None:
    """Bring upstream changes into an installed component (Prefect flow)."""
    from agentforge.errors import ConfigError

    if overwrite and stash:
        raise ConfigError("--overwrite and --stash exclude each other")
    if overwrite and not yes and not typer.confirm(f"Discard every local change of {component}?", default=False):
        raise typer.Abort()
    prepare_prefect()
    engine()
    from flows.pull import pull as pull_flow

    out = run_flow(pull_flow, name=component, to_version=to,
                   mode="overwrite" if overwrite else "stash" if stash else "merge")
    lines = [f"{out['name']}: {out['result']} {out['from_version']} → {out['to_version']} "
             f"({str(out['to_commit'])[:12]}), now {out['sync_status']}"]
    if out["conflicts"]:
        lines.append("Conflicts:")
        lines += [f"  {c}" for c in out["conflicts"]]
        lines.append(f"Resolve with `agentforge resolve {component} --ours | --theirs | --continue`.")
    if out.get("stash"):
        lines.append(f"Local state kept in {out['stash']}")
    emit(out, "\n".join(lines))
    if out["conflicts"]:
        raise typer.Exit(1)


def resolve(component: str = typer.Argument(...),
            ours: bool = typer.Option(False, "--ours", help="Keep the local side of every conflict"),
            theirs: bool = typer.Option(False, "--theirs", help="Take upstream's side of every conflict"),
            cont: bool = typer.Option(False, "--continue", help="Accept hand-edited files")) -> None:
    """Finish a conflicted pull."""
    from agentforge.errors import ConfigError
    from agentforge.services.devloop import resolve_component

    if [ours, theirs, cont].count(True) != 1:
        raise ConfigError("pass exactly one of --ours, --theirs, --continue")
    engine()
    out = resolve_component(component, "ours" if ours else "theirs" if theirs else "continue")
    emit(out.model_dump(), f"{out.name}: resolved {len(out.fields)} field(s) and {len(out.files)} file(s) "
                           f"with --{out.choice} → {out.sync_status}")


@component_app.command("new")
def component_new(name: str = typer.Argument(...),
                  type_: str = typer.Option(..., "--type", help="tool | prompt | agent"),
                  directory: Path | None = typer.Option(None, "--dir", help="Parent folder (default: here)")) -> None:
    """Scaffold a valid LOCAL_ONLY component."""
    from agentforge.services.devloop import new_component

    engine()
    out = new_component(type_, name, directory=directory)
    emit(out.model_dump(), f"Created {out.kind} {out.name} in {out.path} ({', '.join(out.files)})")


def lint(path: Path = typer.Argument(Path("."), help="File or folder")) -> None:
    """Validate component, manifest and composition files (exit 1 on errors)."""
    from agentforge.services.devloop import lint as lint_svc

    results = lint_svc(path)
    errors = sum(1 for r in results if r.level == "error")
    if STATE.json:
        emit([r.model_dump() for r in results])
    else:
        mark = {"ok": "✓", "warning": "⚠", "error": "✗"}
        for r in results:
            console.print(f"{mark[r.level]} {r.path}" + (f" ({r.kind})" if r.kind else ""), markup=False)
            for message in r.messages:
                console.print(f"    {message}", markup=False)
        console.print(f"{len(results)} file(s), {errors} with errors", markup=False)
    if errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    for fn in (edit, status, diff, history, revert, pull, resolve, lint):
        app.command(fn.__name__)(fn)
    app.add_typer(component_app, name="component")
