"""`ls` and `show`: read-only, straight from Postgres (no Prefect import)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import typer

from agentforge.cli.common import engine
from agentforge.cli.output import STATE, console, emit, table


def _semver_sorted(versions: list[str]) -> list[str]:
    from agentforge.core.constraints import sort_key

    return sorted(versions, key=sort_key, reverse=True)


def ls(
    kind: str | None = typer.Option(None, "--type", help="tool | prompt | agent"),
    repo: str | None = typer.Option(None, "--repo", help="Only this repository"),
) -> None:
    """List synced components: latest version, other versions, repository, status."""
    from agentforge.db import session_scope
    from models.catalog import catalog

    if kind and kind.lower() not in ("tool", "prompt", "agent"):
        from agentforge.errors import AgentForgeError

        raise AgentForgeError(f"--type {kind!r} is not one of tool, prompt, agent", code="TYPE_INVALID",
                              hint="For example `agentforge ls --type tool`.")
    with session_scope(engine()) as session:
        lines = catalog(session=session, kind=kind, repository=repo)
        if repo and not lines:
            import sqlalchemy as sa

            from models import Repository

            if session.scalar(sa.select(Repository.id).where(Repository.name == repo)) is None:
                from agentforge.errors import NotFound

                raise NotFound(f"repository {repo!r} is not registered",
                               hint="`agentforge repo ls` lists the registered repositories.")
    from agentforge.core.constraints import latest_version

    data: list[dict[str, Any]] = []
    for line in lines:
        versions = _semver_sorted(line.versions)
        latest = latest_version(versions)  # what a bare name locks: pre-releases only when nothing else
        data.append({"name": line.name, "type": line.kind, "repository": line.repository,
                     "latest": latest or line.tip_version, "versions": versions,
                     "status": line.status, "installed": line.installed_version})
    if STATE.json:
        emit(data)
        return
    if not data:
        if kind or repo:
            filters = " and ".join(f for f in (f"--type {kind}" if kind else "", f"--repo {repo}" if repo else "") if f)
            console.print(f"No components match {filters} (`agentforge ls` lists every synced component; "
                          "`agentforge repo show REPO` tells whether a repository's sync failed).")
        else:
            console.print("No components yet: `agentforge repo add URL` then `agentforge sync`.")
        return
    rows = []
    for d in data:
        others = [v for v in d["versions"] if v != d["latest"]]
        shown = ", ".join(others[:5]) + (" …" if len(others) > 5 else "")
        rows.append((d["name"], d["type"], d["latest"] or "-", shown, d["repository"], d["status"]))
    console.print(table(["component", "type", "latest", "other versions", "repository", "status"], rows))


@dataclass(frozen=True)
class _Candidate:
    version: str
    commit: str
    tags: frozenset[str]
    branches: frozenset[str]
    is_release: bool


def _matching(rows: list[Any], text: str) -> list[Any]:
    """Rows a constraint selects (``^1``, ``>=1.2 <2``, ``latest``, ``tag:T``, ``commit:ID`` or
    ``commit:`` and a commit id prefix of 7+ hex digits), newest first, as ``lock`` would choose among what is
    stored; ``branch:`` names a moving commit, which only a sync and ``lock`` resolve."""
    from agentforge.core.constraints import parse_constraint, sort_key
    from agentforge.errors import ConstraintError, NotFound

    # commit:<7+ hex> (a prefix), or a bare full id (FORMATS §3: NAME@<40-hex> is that commit).
    short = re.fullmatch(r"commit:([0-9a-fA-F]{7,40})|([0-9a-fA-F]{40})", text.strip())
    if short:
        prefix = (short.group(1) or short.group(2)).lower()
        return sorted((r for r in rows if r.commit.startswith(prefix)),
                      key=lambda r: (r.is_release, sort_key(r.version)), reverse=True)
    try:
        constraint = parse_constraint(text)
    except ConstraintError:
        return []
    if constraint.kind == "branch":
        raise NotFound(f"{text!r} names a branch: `show` reads releases and commits already synced",
                       code="VERSION_INVALID", hint="Use `agentforge lock NAME@branch:B` to resolve a branch.")
    if constraint.kind == "commit" and constraint.ref:
        ref = constraint.ref
        picked = [r for r in rows if r.commit.startswith(ref)]
    else:
        picked = [r for r in rows if constraint.matches(_Candidate(r.version, r.commit, frozenset(r.tags or ()),
                                                                   frozenset(), bool(r.is_release)))]
    return sorted(picked, key=lambda r: (r.is_release, sort_key(r.version)), reverse=True)


def show(ref: str = typer.Argument(..., help="COMPONENT[@VERSION] or REPO/COMPONENT[@VERSION]")) -> None:
    """Show one component version: definition, commit, tree, tags, install state."""
    from agentforge.core.constraints import latest_version, sort_key
    from agentforge.core.yamlio import dump_yaml
    from agentforge.db import session_scope
    from agentforge.errors import NotFound
    from models.catalog import component_versions

    name, at, version = ref.partition("@")
    if at and not version:
        raise NotFound(f"{ref!r}: no version after '@'", code="VERSION_INVALID",
                       hint=f"Write {name}@VERSION, or just {name} for the newest release.")
    repo = None
    if "/" in name:
        repo, _, name = name.rpartition("/")
    with session_scope(engine()) as session:
        rows = component_versions(session=session, name=name, repository=repo)
    repos = sorted({r.repository for r in rows})
    if len(repos) > 1:
        raise NotFound(f"{name!r} exists in several repositories: {', '.join(repos)}",
                       code="AMBIGUOUS_COMPONENT", hint=f"Use REPO/{name}, e.g. {repos[0]}/{name}.")
    releases = [r for r in rows if r.is_release]
    if version:
        chosen = [r for r in rows if r.version == version and (r.is_release or not releases)] or \
                 [r for r in rows if r.version == version] or _matching(rows, version)
        if not chosen:
            raise NotFound(f"{name} has no version {version!r}",
                           hint="Versions: " + ", ".join(_semver_sorted(sorted({r.version for r in releases})))
                           + f" (a constraint such as {name}@^1 or {name}@commit:ID works too)")
    else:
        # What a bare name locks (FORMATS §3, Go's rule): the highest release that is not a
        # pre-release, else the newest pre-release (a catalog's pseudo-version); without any
        # release, the highest version synced.
        latest = latest_version(r.version for r in releases)
        chosen = [r for r in releases if r.version == latest] or \
            sorted(rows, key=lambda r: sort_key(r.version), reverse=True)
    row = chosen[0]
    data: dict[str, Any] = {
        "name": row.name, "type": row.kind, "version": row.version, "repository": row.repository,
        "repository_url": row.repository_url, "path": row.path, "commit": row.commit, "tree": row.tree,
        "tags": row.tags, "release": row.is_release, "reused_version": row.is_reused,
        "installed": row.is_installed, "install_path": row.install_path, "status": row.sync_status,
        "versions": _semver_sorted(sorted({r.version for r in releases})), "definition": row.definition,
    }
    if STATE.json:
        emit(data)
        return
    facts = [(k, ", ".join(v) if isinstance(v, list) else v) for k, v in data.items()
             if k != "definition" and v not in (None, [], "")]
    console.print(table(["field", "value"], facts, title=f"{row.name} {row.version}"))
    console.print(dump_yaml(row.definition), markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("ls")(ls)
    app.command("show")(show)
