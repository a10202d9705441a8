"""`compose import|ls|show|validate|override|lock|deploy|instances|rollback|release-hold` and
`instance start|stop|restart|logs|health`.

Read-only commands (ls, show, instances, instance health/logs) query Postgres directly and
never import Prefect; deploy, lock and rollback run their flows. Instance start/stop are
single short steps with nothing to retry, so they call the service directly too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from agentforge.cli.common import engine, prepare_prefect, run_flow
from agentforge.cli.output import STATE, console, emit, err_console, table

compose_app = typer.Typer(help="Compositions: import, lock, deploy, inspect, roll back.", no_args_is_help=True)
instance_app = typer.Typer(help="Running composition instances: start, stop, logs, health.", no_args_is_help=True)

_INSTANCE_REF = "instance id, or COMPOSITION/INSTANCE"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@compose_app.command("import")
def compose_import(file: Path = typer.Argument(..., help="A kind: Composition document (YAML or JSON)")) -> None:
    """Add or refresh a composition from a file (validated first; nothing is written on error)."""
    from agentforge.services.compose import import_file

    engine()
    outcome = import_file(file)
    verb = {"created": "Imported", "updated": "Updated", "unchanged": "Unchanged:"}[outcome.status]
    emit(outcome.model_dump(), f"{verb} composition {outcome.name} {outcome.version}\n"
                               f"Next: agentforge compose lock {outcome.name}")


@compose_app.command("ls")
def compose_ls() -> None:
    """List compositions: version, source, lock and deploy state."""
    from agentforge.services.compose import list_compositions

    engine()
    data = list_compositions()
    emit(data, table(["name", "version", "source", "locked", "deployed", "environment", "local changes"],
                     [(d["name"], d["version"], d["source"], "yes" if d["locked"] else "no",
                       _when(d["deployed_at"]) if d["is_deployed"] else "no", d["environment"] or "-",
                       "yes" if d["has_local_changes"] else "") for d in data])
         if data else "No compositions yet. Add one with `agentforge compose import FILE` or a synced repository.")


@compose_app.command("show")
def compose_show(name: str = typer.Argument(...)) -> None:
    """Show one composition: definition, local overrides, locked versions, instances."""
    from agentforge.core.yamlio import dump_yaml
    from agentforge.services.compose import show_composition

    engine()
    data = show_composition(name)
    if STATE.json:
        emit(data)
        return
    console.print(f"[bold]{data['name']}[/] {data['version']}  (source: {data['source']})")
    if data["description"]:
        console.print(data["description"])
    console.print(f"lock: {data['lock_content_hash'] or 'none (run `agentforge compose lock ' + name + '`)'}")
    for comp, version in data["locked_packages"].items():
        console.print(f"  {comp} {version}")
    if data["local_overrides"]:
        console.print("local overrides:")
        console.print(dump_yaml(data["local_overrides"]).rstrip(), markup=False)
    for inst in data["instances"]:
        console.print(f"instance {name}/{inst['name']}: {inst['status']} ({inst['environment']}) {inst['url'] or ''}")
    console.print("definition:")
    console.print(dump_yaml(data["definition"]).rstrip(), markup=False)


@compose_app.command("validate")
def compose_validate(name: str = typer.Argument(...),
                     env: str | None = typer.Option(None, "--env", help="Also check this environment exists")) -> None:
    """Is NAME resolvable, do its overrides name resolved components, does ENV exist? Exit 2 if not."""
    from agentforge.services.compose import validate_composition

    engine()
    report = validate_composition(name, env)
    lines = [f"{name}: {'valid' if report.ok else 'INVALID'}"]
    lines += [f"  {c.kind} {c.name} {c.version}" for c in report.components]
    lines += [f"  problem: {p}" for p in report.problems]
    if STATE.json:
        emit(report.model_dump())
    else:
        (console if report.ok else err_console).print("\n".join(lines), markup=False)
    if not report.ok:
        raise typer.Exit(2)


@compose_app.command("override")
def compose_override(
    name: str = typer.Argument(...),
    component: str = typer.Option(..., "--component", "-c", help="A component of the resolved composition"),
    sets: list[str] = typer.Option([], "--set", help="PATH=VALUE in the component's spec (repeatable)"),
    clear: bool = typer.Option(False, "--clear", help="Remove your overrides of this component instead"),
) -> None:
    """Keep your own override of a component's spec (applied after the composition's; survives re-syncs)."""
    from agentforge.core.yamlio import dump_yaml
    from agentforge.services.compose import clear_local_overrides, set_local_override

    engine()
    if clear:
        clear_local_overrides(name, component)
        emit({"name": name, "component": component, "cleared": True}, f"Cleared your overrides of {component}")
        return
    local = set_local_override(name, component, sets)
    emit(local, f"Local overrides of {name}:\n" + dump_yaml(local).rstrip())


@compose_app.command("lock")
def compose_lock(name: str = typer.Argument(...),
                 output: Path = typer.Option(Path("forge-lock.yaml"), "-o", "--output", help="Lock file to write"),
                 upgrade: bool = typer.Option(False, "--upgrade", "-U", help="Allow newer versions of everything"),
                 ) -> None:
    """Resolve NAME to exact commits: the composition's stored lock and a forge-lock.yaml.

    Pins of an existing lock file at OUTPUT are kept unless --upgrade.
    """
    prepare_prefect()
    engine()
    from agentforge.cli.config_cmds import auto_sync_before

    auto_sync_before("compose lock")
    from flows.lock import resolve_and_lock

    written = run_flow(resolve_and_lock, root=name, output=str(output), force_kind="composition",
                       upgrade=[] if upgrade else None)
    verb = "Wrote" if written.changed else "Unchanged:"
    lines = [f"{verb} {output} ({written.packages} packages, {written.content_hash[:19]}…); "
             f"stored as the lock of composition {name}"]
    lines += [f"  optional dependency skipped: {s}" for s in written.skipped]
    emit(written.model_dump(), "\n".join(lines))


def _print_results(results: list[dict[str, Any]]) -> None:
    if STATE.json:
        emit(results)
        return
    for r in results:
        console.print(f"{r['composition']}/{r['instance']} ({r['environment']}): {r['status']} "
                      f"lock {(r['lock_hash'] or '')[7:19]}  {r['url'] or ''}", markup=False)


def _run_deploy(flow_name: str, **kwargs: Any) -> None:
    prepare_prefect()
    engine()
    import flows.deploy as deploy_flows
    from agentforge.services.deploy import ReadinessFailed

    try:
        results = run_flow(getattr(deploy_flows, flow_name), **kwargs)
    except ReadinessFailed as exc:
        if not STATE.json:
            for r in exc.details.get("results", []):
                if r["ok"]:
                    console.print(f"{r['composition']}/{r['instance']}: {r['status']} {r['url']}", markup=False)
        raise
    _print_results(results)


@compose_app.command("deploy")
def compose_deploy(
    name: str = typer.Argument(...),
    env: str = typer.Option(..., "--env", help="Environment (one of the composition's spec.environments)"),
    instance: str | None = typer.Option(None, "--instance", help="Deploy only this instance (default: all)"),
    sets: list[str] = typer.Option([], "--set", help="KEY=VALUE for settings, components.NAME.PATH=VALUE for a "
                                                     "component's spec (repeatable)"),
    force: bool = typer.Option(False, "--force", help="Deploy even a lock that a rollback put on hold"),
) -> None:
    """Deploy NAME's frozen lock to ENV; prints each instance's URL. A failed readiness rolls back (exit 1)."""
    from agentforge.cli.config_cmds import auto_sync_before
    from agentforge.services.deploy import check_environment_name, check_instance_name

    check_environment_name(env)  # refused before Prefect starts or anything is built
    if instance is not None:
        check_instance_name(instance)
    prepare_prefect()
    auto_sync_before("deploy")
    _run_deploy("deploy_composition", name=name, environment=env, instance=instance, sets=list(sets), force=force)


@compose_app.command("rollback")
def compose_rollback(name: str = typer.Argument(...), env: str = typer.Option(..., "--env")) -> None:
    """Return NAME in ENV to its last healthy lock; the current lock is put on hold."""
    _run_deploy("rollback_composition", name=name, environment=env)


@compose_app.command("release-hold")
def compose_release_hold(name: str = typer.Argument(...), env: str = typer.Option(..., "--env"),
                         lock_hash: str | None = typer.Argument(None, metavar="[HASH]",
                                                                help="The held lock hash (or a prefix); default all")
                         ) -> None:
    """Lift a hold a rollback put on a lock, so it may be deployed again."""
    from agentforge.services.deploy import release_hold

    engine()
    lifted = release_hold(name, env, lock_hash)
    emit({"released": lifted}, "\n".join(f"Released hold on {h}" for h in lifted))


@compose_app.command("instances")
def compose_instances(name: str | None = typer.Argument(None, help="Only this composition's instances")) -> None:
    """List instances (a process found dead is reported as ERROR)."""
    from agentforge.services.deploy import list_instances

    engine()
    data = list_instances(name)
    emit(data, table(["instance", "id", "env", "status", "url", "lock", "requests", "errors", "avg ms",
                      "last started", "last stopped"],
                     [(d["ref"], d["id"][:8], d["environment"], d["status"], d["url"], (d["lock_hash"] or "")[7:19],
                       d["request_count"], d["error_count"],
                       f"{d['avg_response_time']:.1f}" if d["avg_response_time"] is not None else "-",
                       _when(d["last_started"]), _when(d["last_stopped"])) for d in data])
         if data else "No instances yet. Deploy with `agentforge compose deploy NAME --env ENV`.")


@instance_app.command("start")
def instance_start(ref: str = typer.Argument(..., help=_INSTANCE_REF)) -> None:
    """Start a stopped instance from its deployed bundle; exit 1 if it does not become ready."""
    from agentforge.services.deploy import raise_for_failures, start

    engine()
    result = start(ref)
    raise_for_failures([result])
    _print_results([result.model_dump(mode="json")])


@instance_app.command("stop")
def instance_stop(ref: str = typer.Argument(..., help=_INSTANCE_REF)) -> None:
    """Stop an instance (gracefully: it flushes its metrics)."""
    from agentforge.services.deploy import stop

    engine()
    view = stop(ref)
    emit(view, f"{view['ref']}: {view['status']}")


@instance_app.command("restart")
def instance_restart(ref: str = typer.Argument(..., help=_INSTANCE_REF)) -> None:
    """Stop, then start the instance again."""
    from agentforge.services.deploy import raise_for_failures, restart

    engine()
    result = restart(ref)
    raise_for_failures([result])
    _print_results([result.model_dump(mode="json")])


@instance_app.command("logs")
def instance_logs(ref: str = typer.Argument(..., help=_INSTANCE_REF),
                  lines: int = typer.Option(50, "-n", "--lines", help="How many lines from the end")) -> None:
    """The last lines of the instance's log."""
    from agentforge.services.deploy import instance_logs as logs

    engine()
    text = logs(ref, lines)
    if STATE.json:
        emit({"log": text})
    else:
        console.print(text or "(no log yet)", markup=False, highlight=False)


@instance_app.command("health")
def instance_health(ref: str = typer.Argument(..., help=_INSTANCE_REF)) -> None:
    """Status (reconciled with the process) and the instance's own health probes; exit 1 when unhealthy."""
    from agentforge.services.deploy import instance_health as health

    engine()
    view = health(ref)
    probes = ", ".join(f"{p} {s}" for p, s in view["probes"].items()) or "no probes (not running)"
    emit(view, f"{view['ref']}: {view['status']} {view['url'] or ''}\n  {probes}"
               + (f"\n  {view['error_message']}" if view["error_message"] else ""))
    if not view["healthy"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(compose_app, name="compose")
    app.add_typer(instance_app, name="instance")
