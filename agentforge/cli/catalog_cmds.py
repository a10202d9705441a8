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


def _check_kind(kind: str | None, example: str) -> None:
    """``--type`` of `ls` and `show`: tool, prompt or agent (any case)."""
    if kind and kind.lower() not in ("tool", "prompt", "agent"):
        from agentforge.errors import AgentForgeError

        raise AgentForgeError(f"--type {kind!r} is not one of tool, prompt, agent", code="TYPE_INVALID",
                              hint=f"For example `{example}`.")


def ls(
    kind: str | None = typer.Option(None, "--type", help="tool | prompt | agent"),
    repo: str | None = typer.Option(None, "--repo", help="Only this repository"),
) -> None:
    """List synced components: latest version, other versions, repository, status."""
    from agentforge.db import session_scope
    from models.catalog import catalog

    _check_kind(kind, "agentforge ls --type tool")
    with session_scope(engine()) as session:
        lines = catalog(session=session, kind=kind, repository=repo)
        if repo and not lines:
            import sqlalchemy as sa

            from models import Repository

            if session.scalar(sa.select(Repository.id).where(Repository.name == repo)) is None:
                from agentforge.errors import NotFound

                raise NotFound(f"repository {repo!r} is not registered",
                               hint="`agentforge repo ls` lists the registered repositories.")
    data: list[dict[str, Any]] = []
    for line in lines:
        versions = _semver_sorted(line.versions)
        held = _semver_sorted(line.held_back)
        # What a bare name locks (held-back versions never; pre-releases only when nothing else).
        latest = _bare_name_choice(versions, held)
        data.append({"name": line.name, "type": line.kind, "repository": line.repository,
                     "latest": latest or (None if held else line.tip_version), "versions": versions,
                     "held_back": held, "status": line.status, "installed": line.installed_version})
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
        if d["held_back"]:
            shown += ("; " if shown else "") + "held back: " + ", ".join(d["held_back"][:3]) + \
                (" …" if len(d["held_back"]) > 3 else "")
        rows.append((d["name"], d["type"], d["latest"] or "-", shown, d["repository"], d["status"]))
    console.print(table(["component", "type", "latest", "other versions", "repository", "status"], rows))


def _bare_name_choice(releases: list[str], held: list[str]) -> str | None:
    """What ``lock NAME`` picks among released versions (the resolver's rule, FORMATS §3): the
    highest that is not a pre-release, else — only when no release that is not one exists, not
    even a held-back one (a moved tag must not silently hand over to a pre-release) — the highest
    pre-release; held-back versions are never picked."""
    from agentforge.core.constraints import is_stable_version, latest_version

    latest = latest_version(releases)
    if latest is not None and not is_stable_version(latest) and any(is_stable_version(v) for v in held):
        return None
    return latest


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
    stored; ``branch:`` names a moving commit, which only a sync and ``lock`` resolve. A version
    range never selects a held-back release (a moved tag); ``tag:`` and ``commit:`` still find its
    row, after any row that is not held back."""
    from agentforge.core.constraints import sort_key
    from agentforge.errors import NotFound

    # commit:<7+ hex> (a prefix), or a bare full id (FORMATS §3: NAME@<40-hex> is that commit).
    if re.fullmatch(r"commit:[0-9a-fA-F]{1,6}", text.strip()):
        raise NotFound(f"{text!r}: a commit id prefix needs at least 7 hex digits", code="VERSION_INVALID",
                       hint="Give 7 or more digits of the commit id (`git log --oneline` shows 7).")
    short = re.fullmatch(r"commit:([0-9a-fA-F]{7,40})|([0-9a-fA-F]{40})", text.strip())
    if short:
        prefix = (short.group(1) or short.group(2)).lower()
        return sorted((r for r in rows if r.commit.startswith(prefix)),
                      key=lambda r: (r.is_release, sort_key(r.version)), reverse=True)
    constraint = _constraint_or_none(text)
    if constraint is None:
        return []
    if constraint.kind == "branch":
        raise NotFound(f"{text!r} names a branch: `show` reads releases and commits already synced",
                       code="VERSION_INVALID", hint="Use `agentforge lock NAME@branch:B` to resolve a branch.")
    if constraint.kind == "commit" and constraint.ref:
        ref = constraint.ref
        picked = [r for r in rows if r.commit.startswith(ref)]
    else:
        only_pre = _only_prereleases(rows)
        picked = [r for r in rows if _allows(constraint, r, only_pre)]
    return sorted(picked, key=lambda r: (r.is_release, sort_key(r.version)), reverse=True)


def _constraint_or_none(text: str) -> Any:
    from agentforge.core.constraints import parse_constraint
    from agentforge.errors import ConstraintError

    try:
        return parse_constraint(text)
    except ConstraintError:
        return None


def _only_prereleases(rows: list[Any]) -> bool:
    """No release that is not a pre-release, not even a held-back one (the resolver's rule)."""
    from agentforge.core.constraints import is_stable_version

    return not any((r.is_release or r.held_back) and is_stable_version(r.version) for r in rows)


def _allows(constraint: Any, row: Any, only_pre: bool, *, as_release: bool | None = None) -> bool:
    """``constraint`` selects ``row`` as the resolver reads it (``only_pre``: pre-releases for a
    constraint that names no version, see :func:`_only_prereleases`)."""
    return bool(constraint.matches(
        _Candidate(row.version, row.commit, frozenset(row.tags or ()), frozenset(),
                   bool(row.is_release if as_release is None else as_release)), only_prereleases=only_pre))


def show(ref: str = typer.Argument(..., help="COMPONENT[@VERSION] or REPO/COMPONENT[@VERSION]"),
         kind: str | None = typer.Option(None, "--type", help="tool, prompt or agent: for a name that "
                                                              "several kinds share in one repository")) -> None:
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
    if not name.strip():
        raise NotFound(f"{ref!r}: no component name" + (" before '@'" if at else ""), code="COMPONENT_INVALID",
                       hint="Write COMPONENT[@VERSION] or REPO/COMPONENT[@VERSION], e.g. `agentforge show "
                            "lookup@1.0.0`; `agentforge ls` lists the names.")
    if repo is not None and not repo.strip():
        raise NotFound(f"{ref!r}: no repository name before '/'", code="COMPONENT_INVALID",
                       hint=f"Write REPO/{name} (`agentforge repo ls` lists them), or just {name}.")
    _check_kind(kind, f"agentforge show {ref} --type tool")
    with session_scope(engine()) as session:
        rows = component_versions(session=session, name=name, repository=repo)
    if kind is not None:
        rows = [r for r in rows if r.kind.lower() == kind.lower()]
    repos = sorted({r.repository for r in rows})
    if len(repos) > 1:
        raise NotFound(f"{name!r} exists in several repositories: {', '.join(repos)}",
                       code="AMBIGUOUS_COMPONENT", hint=f"Use REPO/{name}, e.g. {repos[0]}/{name}.")
    kinds = sorted({r.kind for r in rows})
    if len(kinds) > 1:  # FORMATS §1: a Tool and a Prompt of one repository may share a name
        raise NotFound(f"{name!r} in repository {repos[0]} names a {' and a '.join(kinds)}",
                       code="AMBIGUOUS_COMPONENT", hint=f"Pick one: `agentforge show {ref} --type {kinds[0].lower()}`.")
    # Releases as `lock` reads them: a held-back one (its tag moved, not accepted) is not one.
    releases = [r for r in rows if r.is_release]
    release_versions = _semver_sorted(sorted({r.version for r in releases}))
    held = [r for r in rows if r.held_back]
    held_versions = _semver_sorted(sorted({r.version for r in held} - set(release_versions)))
    if version:
        # That exact version: its release, else its held-back release (shown, marked), else a commit of it.
        chosen = sorted((r for r in rows if r.version == version), key=lambda r: (r.is_release, r.held_back),
                        reverse=True) or _matching(rows, version)
        if not chosen:
            constraint = _constraint_or_none(version)
            only_pre = _only_prereleases(rows)
            blocked = [r for r in held if constraint is not None and _allows(constraint, r, only_pre, as_release=True)]
            because = (f"; held back: {', '.join(_semver_sorted(sorted({r.version for r in blocked})))} "
                       f"({blocked[0].held_back_reason})") if blocked else ""
            raise NotFound(f"{name} has no version {version!r}{because}",
                           hint="Versions: " + (", ".join(release_versions) or "none released")
                           + f" (a constraint such as {name}@^1 or {name}@commit:ID works too)")
    else:
        # What a bare name locks (FORMATS §3, Go's rule): the highest release that is not a
        # pre-release, else the newest pre-release (a catalog's pseudo-version) unless a held-back
        # release is not one; without any, the newest held-back release (shown, marked); without
        # any release at all, the highest version synced.
        latest = _bare_name_choice(release_versions, held_versions)
        newest_held = latest_version(held_versions)
        chosen = [r for r in releases if r.version == latest] or \
            [r for r in held if latest is None and r.version == newest_held] or \
            sorted(rows, key=lambda r: sort_key(r.version), reverse=True)
    row = chosen[0]
    data: dict[str, Any] = {
        "name": row.name, "type": row.kind, "version": row.version, "repository": row.repository,
        "repository_url": row.repository_url, "path": row.path, "commit": row.commit, "tree": row.tree,
        "tags": row.tags, "release": row.is_release, "reused_version": row.is_reused,
        "held_back": row.held_back, "held_back_tags": row.tags if row.held_back else [],
        "held_back_reason": row.held_back_reason, "pending_reason": row.pending_reason,
        "installed": row.is_installed, "install_path": row.install_path, "status": row.sync_status,
        "versions": release_versions, "held_back_versions": held_versions, "definition": row.definition,
    }
    if STATE.json:
        emit(data)
        return
    quiet = {"definition", "held_back_tags", "held_back_reason", "pending_reason"} | \
        (set() if row.held_back else {"held_back"})
    facts = [(k, ", ".join(v) if isinstance(v, list) else v) for k, v in data.items()
             if k not in quiet and v not in (None, [], "")]
    console.print(table(["field", "value"], facts, title=f"{row.name} {row.version}"))
    if row.held_back:
        console.print(f"{row.name} {row.version}: {row.held_back_reason} (`agentforge lock` does not choose it)",
                      markup=False, highlight=False)
    if row.pending_reason:
        console.print(f"{row.name} {row.version} at {row.commit[:12]} is no release: {row.pending_reason}",
                      markup=False, highlight=False)
    console.print(dump_yaml(row.definition), markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("ls")(ls)
    app.command("show")(show)
