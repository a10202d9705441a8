"""`repo add|ls|show|rm|accept-tag` and `sync`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from agentforge.core.results import RepoSyncResult
    from agentforge.services.repos import FollowReport

from agentforge.cli.common import engine, prepare_prefect, run_flow
from agentforge.cli.output import STATE, console, emit, err_console, table

repo_app = typer.Typer(help="Register and inspect component repositories.", no_args_is_help=True)


# ignore_unknown_options: a URL such as `-oProxyCommand=x` reaches our URL check (and is refused
# as URL_INVALID) instead of failing in the option parser with a confusing message.
@repo_app.command("add", context_settings={"ignore_unknown_options": True})
def repo_add(
    url: str = typer.Argument(..., help="o/r, github.com/o/r, https://host/o/r(.git), git@host:o/r.git, "
                                        "file:///abs/path or /abs/path"),
    name: str | None = typer.Option(None, "--name", help="Short name (default: last path segment)"),
    type: str | None = typer.Option(None, "--type", help="tools | prompts | agents | compositions | mixed"),
    branch: str | None = typer.Option(None, "--branch", help="Branch to track (default: the remote's HEAD)"),
    allow_insecure: bool = typer.Option(False, "--allow-insecure", help="Allow plain http:// URLs"),
    no_check: bool = typer.Option(False, "--no-check", help="Do not contact the remote now"),
    format: str | None = typer.Option(None, "--format", help="Force a catalog format: forge | claude-marketplace "
                                      "| claude-plugin | agent-skills | copilot | mcp-server; auto: detect again "
                                      "after a forced one (default: detect)"),
    untrusted: bool = typer.Option(False, "--untrusted", help="Do not trust it: locks need signed releases "
                                   "(or allow_unsigned_components)"),
) -> None:
    """Register a repository (idempotent for the same name and URL)."""
    from agentforge.catalogs import FORMATS
    from agentforge.services.repos import AUTO_FORMAT, add_repository

    if format is not None and format not in FORMATS and format != AUTO_FORMAT:  # before the database is opened
        from agentforge.errors import AgentForgeError

        raise AgentForgeError(f"--format {format!r} is not a known catalog format", code="FORMAT_UNKNOWN",
                              hint=f"Use one of: {', '.join(FORMATS)}, or {AUTO_FORMAT} to detect it.")
    engine()
    added = add_repository(url, name=name, type=type, branch=branch, allow_insecure=allow_insecure,
                           check=not no_check, format=format, untrusted=untrusted)
    if added.changes:  # re-added with another --branch or --format
        note = "" if added.trusted else " (untrusted)"
        emit(added.model_dump(), f"Updated {added.name} → {added.url}: {'; '.join(added.changes)}; the next sync "
                                 f"reads it{note}\nNext: agentforge sync {added.name}")
        return
    verb = "Registered" if added.created else "Already registered:"
    forced = format if format and format != AUTO_FORMAT else None
    extra = (f" (format {forced}, forced)" if forced else "") + ("" if added.trusted else " (untrusted)")
    emit(added.model_dump(), f"{verb} {added.name} → {added.url}{extra}\nNext: agentforge sync {added.name}")


@repo_app.command("ls")
def repo_ls() -> None:
    """List registered repositories with their sync state."""
    from agentforge.db import session_scope
    from models import repositories as repos_q

    with session_scope(engine()) as session:
        repos = repos_q.list_repositories(session=session)
        counts = repos_q.component_counts(session=session)
        data: list[dict[str, Any]] = [
            {"name": r.name, "url": r.url, "type": r.type.value, "status": r.sync_status.value,
             "default_branch": r.default_branch, "last_sync": r.last_sync, "active": r.is_active,
             "components": counts.get(r.id, (0, 0))[0], "last_error": r.last_error}
            for r in repos
        ]
    emit(data, table(["name", "url", "type", "status", "components", "last sync"],
                     [(d["name"], d["url"], d["type"], d["status"], d["components"],
                       d["last_sync"].strftime("%Y-%m-%d %H:%M:%S") if d["last_sync"] else "never")
                      for d in data]) if data else "No repositories yet. Add one with `agentforge repo add URL`.")


def _normalised(url: object) -> str | None:
    """A source URL as stored for a registered repository (None when it is not a valid one)."""
    from agentforge.core.urls import normalise_repository_url
    from agentforge.errors import AgentForgeError

    if not isinstance(url, str):
        return None
    try:
        return normalise_repository_url(url)
    except AgentForgeError:
        return url


@repo_app.command("show")
def repo_show(name: str = typer.Argument(...)) -> None:
    """Show one repository: sync state, tags (with moved ones), last operations."""
    import sqlalchemy as sa

    from agentforge.db import session_scope
    from models import Repository, RepositoryTag, SyncOperation
    from models import repositories as repos_q

    with session_scope(engine()) as session:
        repo = repos_q.get_repository(session=session, name=name)
        counts = repos_q.component_counts(session=session).get(repo.id, (0, 0))
        # The synthetic manifest of a catalog repository (marketplace, skills…) says what was found.
        catalog: dict[str, Any] = (repo.manifest or {}).get("catalog") or {}
        known_urls = set(session.scalars(sa.select(Repository.url)).all())
        tags = session.scalars(sa.select(RepositoryTag).where(RepositoryTag.repository_id == repo.id)
                               .order_by(RepositoryTag.tag)).all()
        ops = session.scalars(sa.select(SyncOperation).where(SyncOperation.repository_id == repo.id)
                              .order_by(SyncOperation.created_at.desc()).limit(5)).all()
        # A no-op sync reads nothing: the problems are those of the last sync that read the repository.
        reading = repos_q.last_reading_operation(session=session, repository_id=repo.id)
        data: dict[str, Any] = {
            "name": repo.name, "url": repo.url, "type": repo.type.value, "status": repo.sync_status.value,
            "default_branch": repo.default_branch, "last_sync": repo.last_sync, "active": repo.is_active,
            "format": (repo.source_format or "").removeprefix("forced:") or None,
            "format_forced": (repo.source_format or "").startswith("forced:"),
            "format_counts": dict(catalog.get("counts") or {}),
            "unresolved_external": [e for e in (catalog.get("external") or [])
                                    if isinstance(e, dict) and _normalised(e.get("repository")) not in known_urls],
            "manifest_hash": repo.manifest_hash, "last_error": repo.last_error,
            "components": counts[0], "component_rows": counts[1],
            "tags": [{"tag": t.tag, "commit": t.first_commit, "state": t.state.value,
                      "current_commit": t.current_commit} for t in tags],
            "operations": [{"status": o.status.value, "started_at": o.started_at, "message": o.message,
                            "error": o.error_message, "target_commit": o.target_commit} for o in ops],
            "problems": (reading.error_message or "").splitlines() if reading is not None else [],
            "problems_from": ({"status": reading.status.value, "started_at": reading.started_at,
                               "target_commit": reading.target_commit} if reading is not None else None),
        }
    if STATE.json:
        emit(data)
        return
    if data["format_forced"]:
        data = {**data, "format": f"{data['format']} (forced)"}
    if data["format_counts"]:
        data = {**data, "counts": ", ".join(f"{k} {v}" for k, v in data["format_counts"].items())}
    rows = [(k, data[k]) for k in ("name", "url", "type", "status", "default_branch", "last_sync", "format",
                                   "counts", "components", "component_rows", "last_error")
            if data.get(k) is not None]
    console.print(table(["field", "value"], rows, title=f"repository {name}"))
    if data["unresolved_external"]:
        console.print(table(["plugin", "repository", "version"],
                            [(e.get("component"), e.get("repository"), e.get("version"))
                             for e in data["unresolved_external"]],
                            title="unresolved external plugins (`agentforge sync --follow-external`)"))
    if data["tags"]:
        console.print(table(["tag", "commit", "state", "now at"],
                            [(t["tag"], t["commit"][:12], t["state"], (t["current_commit"] or "")[:12]
                              if t["state"] != "OK" else "") for t in data["tags"]], title="release tags"))
    if data["problems"]:
        since = data["problems_from"]
        later = bool(data["operations"]) and data["operations"][0]["started_at"] != since["started_at"]
        console.print("[bold]Problems in the last sync that read it[/]" + (
            f" ({since['started_at']:%Y-%m-%d %H:%M:%S %Z}; the syncs since found nothing new upstream):" if later
            else ":"))
        console.print("\n".join(data["problems"]), markup=False)


@repo_app.command("rm")
def repo_rm(name: str = typer.Argument(...),
            force: bool = typer.Option(False, "--force", help="Remove even with installed components, or with "
                                       "compositions that have instances (those compositions are kept)")) -> None:
    """Unregister a repository; delete its mirror and the compositions synced from it."""
    from agentforge.services.repos import remove_repository

    engine()
    done = remove_repository(name, force=force)
    count = len(done.compositions_removed)
    lines = [f"Removed {done.removed}" + (
        f" and {count} composition{'s' if count != 1 else ''} synced from it: {', '.join(done.compositions_removed)}"
        if count else "")]
    if done.compositions_kept:
        lines.append(f"Kept {len(done.compositions_kept)} composition(s) from it that have instances (their "
                     f"instances and deployment history need them): {', '.join(done.compositions_kept)}")
    for composition, others in sorted(done.offered_elsewhere.items()):
        lines.append(f"{', '.join(others)} also offer{'s' if len(others) == 1 else ''} a composition {composition}: "
                     f"the next `agentforge sync {' '.join(others)}` stores it")
    emit({**done.model_dump(), "compositions_removed_count": count}, "\n".join(lines))


@repo_app.command("accept-tag")
def repo_accept_tag(name: str = typer.Argument(...), tag: str = typer.Argument(...)) -> None:
    """Accept a moved release tag's new commit (the next sync reads it)."""
    from agentforge.db import session_scope
    from models import repositories as repos_q

    eng = engine()
    with session_scope(eng) as session:
        repo_id = repos_q.get_repository(session=session, name=name).id
    # Under the repository's sync lock, as every other writer of its component rows and tag
    # ledger: a sync running now finishes first (it read both when it began).
    with repos_q.repository_sync_lock(eng, repo_id), session_scope(eng) as session:
        entry = repos_q.accept_tag(session=session, repository_id=repo_id, tag=tag)
    emit({"repository": name, "tag": tag, "commit": entry.first_commit},
         f"Accepted {tag} at {entry.first_commit[:12]}; run `agentforge sync {name}` to read it.")


def run_sync(names: list[str] | None) -> list[RepoSyncResult]:
    """What `agentforge sync` does, without the display: the batched ref check and the records of
    unchanged/unreachable repositories in-process, then the Prefect flow (given the plan) only
    when some repository needs work. Prefect is imported only in that case."""
    from agentforge.core.results import SyncPlan
    from agentforge.parsepool import offload
    from agentforge.services import sync as svc

    plan = svc.check_and_record(names or None)
    if not plan.to_sync:
        return sorted(svc.plan_results(plan), key=lambda r: r.name)
    # The parse worker starts now, so its imports overlap Prefect's start and the flow run's
    # creation (the flow's own offload block reuses it) instead of delaying the first parses.
    with offload(len(plan.to_sync)):
        prepare_prefect()
        from flows.sync import sync_repositories

        results: list[RepoSyncResult] = run_flow(
            sync_repositories, names=names or None,
            plan=SyncPlan.model_validate(plan.model_dump(exclude={"remote"})),
            remote_refs={i: plan.remote[i] for i in plan.to_sync if i in plan.remote})
    return results


def sync(names: list[str] | None = typer.Argument(None, help="Repositories (default: all)"),
         follow_external: bool = typer.Option(False, "--follow-external",
                                              help="Register and sync the external plugin sources of synced "
                                                   "marketplaces (on the marketplace's own host) and write each "
                                                   "external plugin's composition, pinned to its sha/ref")) -> None:
    """Sync repositories: one batched ref check, then fetch and read only what moved.

    The ref check and the records of unchanged or unreachable repositories run here, without
    Prefect; the Prefect flow starts only when some repository needs work, and gets the plan
    (so no remote is asked twice). A no-op sync therefore imports no Prefect at all.
    """
    prepare_prefect()
    engine()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    from agentforge.core.events import subscribe

    show = not STATE.json and err_console.is_terminal
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        console=err_console, transient=True, disable=not show)
    job = progress.add_task("checking remotes", total=None)

    def on_event(event: str, data: dict[str, Any]) -> None:
        if event == "sync.planned":
            progress.update(job, description=f"syncing {data['to_sync']} changed of {data['total']}",
                            total=max(1, data["to_sync"]), completed=0)
        elif event == "sync.repo.started":
            progress.update(job, description=f"syncing {data['name']}")
        elif event == "sync.repo.finished":
            progress.advance(job)

    unsubscribe = subscribe(on_event)
    try:
        with progress:
            results = run_sync(list(names or []) or None)
    finally:
        unsubscribe()
    data = [r.model_dump() for r in results]
    reports = _follow_external(results) if follow_external else None
    if STATE.json:
        emit(data if reports is None else {"sync": data, "external": [r.model_dump() for r in reports]})
    else:
        console.print(table(["repository", "status", "new rows", "releases", "detail"],
                            [(r.name, r.status, r.new_components or "", r.releases or "",
                              r.error or r.message) for r in results], title="sync"))
        for r in results:
            for p in r.problems:
                console.print(f"  ⚠ {r.name}: {p}", markup=False)
        if reports is not None:
            _print_follow(reports)
    followed = [r for report in reports or [] for r in report.synced]
    from agentforge.services.sync import BACKING_OFF

    # A repository skipped while it backs off after a failure is still failed (cron and CI must see it).
    if any(r.status == "failed" or r.error_code == BACKING_OFF for r in [*results, *followed]):
        # SystemExit, not typer.Exit: under standalone_mode=False click *returns* an Exit's code,
        # and main() ignores that return value, so typer.Exit(1) would end with status 0.
        raise SystemExit(1)


def _follow_external(results: list[RepoSyncResult]) -> list[FollowReport]:
    """`sync --follow-external`: register, sync (through the flow, like this sync) and link the
    external plugins of every marketplace this sync saw; see ``services.repos.follow_external``."""
    from agentforge.services.repos import follow_external

    seen = [r.name for r in results if r.status in ("synced", "unchanged")]
    reports = follow_external(seen, sync=run_sync, already_synced=[r.name for r in results])
    return [r for r in reports if r.sources]


def _print_follow(reports: list[FollowReport]) -> None:
    for report in reports:
        for a in report.registered:
            console.print(f"  + {report.marketplace}: external source {a.url} "
                          f"{'registered as' if a.created else 'already registered as'} {a.name}", markup=False)
        for r in report.synced:
            console.print(f"  {r.name}: {r.status} {r.error or r.message}", markup=False)
            for p in r.problems:
                console.print(f"  ⚠ {r.name}: {p}", markup=False)
        console.print(table(["plugin", "status", "repository", "pinned", "detail"],
                            [(s.plugin, s.status, s.repository or s.url, (s.commit or s.version)[:19], s.message)
                             for s in report.sources],
                            title=f"external plugins of {report.marketplace}"))


def register(app: typer.Typer) -> None:
    app.add_typer(repo_app, name="repo")
    app.command("sync")(sync)
