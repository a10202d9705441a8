"""Registering and removing repositories."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from pydantic import BaseModel

from agentforge.catalogs import FORMATS
from agentforge.config import Settings, get_settings
from agentforge.core.results import RepoSyncResult
from agentforge.core.urls import default_repository_name, normalise_repository_url
from agentforge.db import get_engine, session_scope
from agentforge.errors import AgentForgeError, GitError, redact
from agentforge.gitops import branch_name_problem, ls_remote_many, readable_ref_name, remove_mirror
from agentforge.services.settings import current_user_id
from agentforge.services.sync import FORCED_PREFIX, credentials_for, mirror_path
from models import Composition, Repository, RepoType
from models import repositories as repos_q
from models import settings as settings_q

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


def _suggested_name(name: str) -> str:
    """A valid name close to ``name`` (``NAME_INVALID``'s hint must itself be valid)."""
    suggestion = re.sub(r"[^a-z0-9._-]+", "-", name.lower())
    suggestion = re.sub(r"^[^a-z0-9]+", "", suggestion)[:100].rstrip("-._")
    return suggestion if _NAME_RE.match(suggestion) else "my-repo"


class RepoAdded(BaseModel):
    name: str
    url: str
    type: str
    created: bool
    format: str | None = None  # the forced catalog format, None: detected at each sync
    trusted: bool = True
    branch: str | None = None  # the tracked branch
    #: Re-adding a registered repository with another --branch or --format: what changed (one line
    #: each, e.g. "branch main → dev"); the sync checkpoint was reset, so the next sync reads it.
    changes: list[str] = []
    deleted_rows: int = 0  # component rows read with the old format, deleted by a new --format


#: `repo add --format auto`: no forced format (the next sync detects it), also on a repository
#: registered with a forced one.
AUTO_FORMAT = "auto"


def add_repository(raw_url: str, *, name: str | None = None, type: str | None = None, branch: str | None = None,
                   allow_insecure: bool = False, check: bool = True, format: str | None = None,
                   untrusted: bool = False, settings: Settings | None = None) -> RepoAdded:
    """Register a repository. ``format`` forces a catalog format (stored as ``forced:<format>``,
    see ``services.sync.forced_format``); ``untrusted`` takes its URL off the current user's
    trusted list (a registered repository is trusted by default), so locks need signed releases
    or ``allow_unsigned_components``."""
    settings = settings or get_settings()
    if format is not None and format not in FORMATS and format != AUTO_FORMAT:
        raise AgentForgeError(f"--format {format!r} is not a known catalog format", code="FORMAT_UNKNOWN",
                              hint=f"Use one of: {', '.join(FORMATS)}, or {AUTO_FORMAT} to detect it.")
    if not raw_url.startswith(("/", "file:", "http", "git@")) and os.path.isdir(raw_url):
        # `owner/repo` is GitHub shorthand; a relative folder of the same shape is almost surely meant.
        raise AgentForgeError(f"{raw_url!r} reads as the GitHub repository github.com/{raw_url}, but it is also a "
                              "folder here", code="URL_AMBIGUOUS",
                              hint=f"For the local folder use its absolute path: {os.path.abspath(raw_url)}")
    url = normalise_repository_url(raw_url, allow_insecure=allow_insecure)
    repo_name = name or default_repository_name(url)
    if not _NAME_RE.match(repo_name):
        raise AgentForgeError(f"repository name {repo_name!r} is not valid: use lower-case letters, digits, '.', "
                              "'_' and '-', starting with a letter or digit (at most 100 characters)",
                              code="NAME_INVALID",
                              hint=f"Pass --name with such a name, e.g. `--name {_suggested_name(repo_name)}`.")
    try:
        repo_type = RepoType((type or "mixed").upper())
    except ValueError:
        raise AgentForgeError(f"--type {type!r} is not one of tools, prompts, agents, compositions, mixed",
                              code="TYPE_INVALID",
                              hint="Leave --type out: a repository is 'mixed' by default.") from None
    if branch is not None and not readable_ref_name(branch):
        raise AgentForgeError(f"--branch {branch.encode('utf-8', 'surrogateescape')!r} is not UTF-8 text",
                              code="GIT_REF_NOT_FOUND", hint="Name a branch whose name is text.")
    why = branch_name_problem(branch) if branch is not None else None
    if why:  # with --no-check too: nothing git would refuse (or read as an option) is stored
        raise AgentForgeError(f"--branch {branch!r} is not a branch name: {why}", code="BRANCH_INVALID",
                              hint="Name an existing branch of the repository, e.g. --branch main.")
    asked_branch = branch  # only an explicit --branch retargets a registered repository
    if check:
        outcome = ls_remote_many([url], credentials=credentials_for(url, settings),
                                 timeout=settings.git_timeout_seconds, allow_http=allow_insecure)[url]
        if isinstance(outcome, GitError):
            raise AgentForgeError(f"cannot reach {url}: {outcome.message}", code=outcome.code,
                                  hint=outcome.hint or "Check the URL and your access; --no-check skips this.",
                                  retryable=outcome.retryable)
        if branch and f"refs/heads/{branch}" not in outcome.refs:
            raise AgentForgeError(f"{url} has no branch {branch!r}", code="GIT_REF_NOT_FOUND",
                                  hint="Branches: " + ", ".join(sorted(r.removeprefix("refs/heads/")
                                                                      for r in outcome.refs
                                                                      if r.startswith("refs/heads/")))[:300])
        branch = branch or outcome.default_branch
    # `--format auto` stores no format (detect at the next sync); on a repository with a forced one
    # it is a change (the empty string tells retarget_repository to drop it).
    forced = (FORCED_PREFIX + format if format != AUTO_FORMAT else "") if format else None
    engine = get_engine(settings)
    with session_scope(engine) as session:
        repo, created = repos_q.add_repository(session=session, name=repo_name, url=url, type=repo_type,
                                               default_branch=branch, source_format=forced or None)
        if untrusted:
            settings_q.set_trusted(session=session, user_id=current_user_id(), url=repo.url, trusted=False)
        added = RepoAdded(name=repo.name, url=repo.url, type=repo.type.value, created=created, format=format,
                          trusted=not untrusted, branch=repo.default_branch)
        repo_id = repo.id
        retarget = not created and ((asked_branch is not None and asked_branch != repo.default_branch)
                                    or (forced is not None and forced != (repo.source_format or "")
                                        and (forced or (repo.source_format or "").startswith(FORCED_PREFIX))))
    if not retarget:
        return added
    # Re-added with another --branch or --format. Under the sync lock: a sync running now must not
    # record the old branch or write rows read with the old format after this change.
    with repos_q.repository_sync_lock(engine, repo_id), session_scope(engine) as session:
        done = repos_q.retarget_repository(session=session, repository_id=repo_id, default_branch=asked_branch,
                                           source_format=forced)
    if done.branch is not None:
        added.changes.append(f"branch {done.branch[0]} → {done.branch[1]}")
        added.branch = done.branch[1]
    if done.source_format is not None:
        old = done.source_format[0]
        was = "not synced yet" if old is None else (old.removeprefix(FORCED_PREFIX) + (
            " (forced)" if old.startswith(FORCED_PREFIX) else " (detected)"))
        now = "detected at the next sync" if format == AUTO_FORMAT else f"{format} (forced)"
        added.changes.append(f"format {was} → {now}" + (
            f"; {done.deleted_rows} component rows read with the old format deleted" if done.deleted_rows else ""))
    added.deleted_rows = done.deleted_rows
    return added


# --- `sync --follow-external` ------------------------------------------------------------------


class ExternalSource(BaseModel):
    """One external plugin of a marketplace and what `--follow-external` did with it.

    ``status``: ``linked`` (its composition is written, pinned), ``unchanged`` (the same again),
    ``not-followed`` (another host than the marketplace's: reported, never contacted), or
    ``unresolved`` (``message`` says why).
    """

    plugin: str
    url: str
    version: str  # the pin: commit:<sha> | tag:<ref> | branch:<ref> | latest
    path: str | None = None
    status: str = "unresolved"
    repository: str | None = None  # the registered repository's name
    commit: str | None = None  # the commit the pin resolved to
    components: int = 0
    message: str = ""


class FollowReport(BaseModel):
    marketplace: str
    registered: list[RepoAdded] = []  # newly registered (created) or already known (created=False)
    synced: list[RepoSyncResult] = []  # the syncs of those repositories run by the follow
    sources: list[ExternalSource] = []


SyncRunner = Callable[[list[str]], Sequence[RepoSyncResult]]


def _origin(url: str) -> str:
    """Where a normalised URL lives: ``file://`` for local paths, else its host (https and ssh alike)."""
    if url.startswith("file://"):
        return "file://"
    if url.startswith("git@"):
        return url[len("git@"):].split(":", 1)[0].lower()
    return (urlsplit(url).hostname or "").lower()


def _direct_sync(names: list[str]) -> list[RepoSyncResult]:
    """The sync without Prefect (the service calls the flow's tasks make)."""
    from agentforge.services import sync as svc

    plan = svc.check_and_record(names)
    results = svc.plan_results(plan)
    results += [svc.sync_repository(i, remote=plan.remote.get(i)) for i in plan.to_sync]
    return results


def follow_external(names: Sequence[str], *, sync: SyncRunner | None = None, already_synced: Sequence[str] = (),
                    settings: Settings | None = None) -> list[FollowReport]:
    """`agentforge sync --follow-external`: register, sync and link the external plugins of the
    marketplaces ``names`` (each synced already; others are ignored).

    1. Each external source (``catalog.external`` of the stored tip manifest) on the marketplace's
       own host (``file://`` for a local marketplace) is registered like `repo add` (URL policy,
       ``ls-remote`` check), or found registered under any name. A source on another host is
       reported and never contacted: a marketplace must not make us reach (or read local
       paths on) hosts the user did not choose — `agentforge repo add URL` opts in, after which
       it is linked like the others.
    2. The followed repositories are synced with ``sync`` (the CLI passes its Prefect-backed
       runner; default: the plain service calls), except those in ``already_synced``.
    3. Each source whose repository is registered and synced is linked: its pin resolved to a
       commit, that commit read (fetched first when it is no release point, its component rows
       written as a sync would), and a Composition named after the plugin written with one
       dependency per component of the plugin (under ``path`` for ``git-subdir``), each
       ``repository: <url>`` pinned ``commit:<sha>``. The external repository's own composition of
       that name, if it wrote one, becomes the marketplace's (pinned); a composition of that name
       from anywhere else is left alone and reported.

    Running it again registers nothing new and rewrites nothing (``unchanged``). One level: the
    externals of a followed repository are not followed in turn.
    """
    settings = settings or get_settings()
    reports: list[FollowReport] = []
    followed: dict[str, None] = {}
    for name in names:
        report = _register_external(name, settings)
        reports.append(report)
        followed.update((added.name, None) for added in report.registered)
    to_sync = [n for n in followed if n not in set(already_synced)]
    results = {r.name: r for r in (sync or _direct_sync)(to_sync)} if to_sync else {}
    for report in reports:
        report.synced = [results[a.name] for a in report.registered if a.name in results]
        for source in report.sources:
            result = results.get(source.repository or "")
            if result is not None and result.status == "failed":
                source.message = f"its sync failed: {result.error}"
    for report in reports:
        _link_external(report, settings)
    return reports


def _external_entries(manifest: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    catalog = (manifest or {}).get("catalog") or {}
    return [dict(e) for e in (catalog.get("external") or []) if isinstance(e, dict) and e.get("repository")]


def _register_external(name: str, settings: Settings) -> FollowReport:
    with session_scope(get_engine(settings)) as session:
        repo = repos_q.get_repository(session=session, name=name)
        market_url, entries = repo.url, _external_entries(repo.manifest)
        known_rows = session.execute(sa.select(Repository.url, Repository.name, Repository.type)).all()
        by_url = {row.url: row.name for row in known_rows}
        types = {row.url: row.type.value for row in known_rows}
        names = set(by_url.values())
    report = FollowReport(marketplace=name)
    registered: dict[str, RepoAdded] = {}
    for entry in entries:
        source = ExternalSource(plugin=str(entry.get("component")), url=str(entry["repository"]),
                                version=str(entry.get("version") or "latest"),
                                path=entry.get("path") if isinstance(entry.get("path"), str) else None)
        report.sources.append(source)
        try:
            url = normalise_repository_url(source.url)
        except AgentForgeError as exc:
            source.message = exc.message
            source.url = redact(source.url)  # reported, never used: no credentials on the terminal
            continue
        source.url = url
        if url in by_url:
            source.repository = by_url[url]
            registered.setdefault(url, RepoAdded(name=by_url[url], url=url, type=types.get(url, "mixed"),
                                                 created=False))
            continue
        if _origin(url) != _origin(market_url):
            source.status = "not-followed"
            source.message = (f"on another host than the marketplace ({_origin(url)}, not {_origin(market_url)}); "
                              f"not contacted — `agentforge repo add {url}` to use it, then sync --follow-external "
                              "again")
            continue
        base = default_repository_name(url)
        candidate = base
        for n in range(2, 100):  # a free name: the same last path segment may exist on other hosts
            if candidate not in names:
                break
            candidate = f"{base[:96]}-{n}"
        try:
            added = add_repository(url, name=candidate, settings=settings)
        except AgentForgeError as exc:
            source.message = f"not registered: {exc.message}"
            continue
        names.add(added.name)
        by_url[url] = added.name
        source.repository = added.name
        registered[url] = added
    report.registered = list(registered.values())
    return report


def _pinned_commit(version: str, refs: Mapping[str, str], default_branch: str) -> tuple[str | None, str]:
    """The commit a marketplace pin names in the synced refs (a ``commit:`` pin is taken as written)."""
    kind, _, ref = version.partition(":")
    if kind == "commit" and re.fullmatch(r"[0-9a-f]{40}", ref):
        return ref, ""
    if kind == "tag":
        return refs.get(f"refs/tags/{ref}"), f"no tag {ref!r}"
    if kind == "branch":
        return refs.get(f"refs/heads/{ref}"), f"no branch {ref!r}"
    return refs.get(f"refs/heads/{default_branch}"), f"no commit on its default branch {default_branch!r}"


def _link_external(report: FollowReport, settings: Settings) -> None:
    from agentforge.catalogs import pseudo_version, read_catalog_snapshot
    from agentforge.catalogs.versions import coerce_version
    from agentforge.core.documents import API_VERSION, parse_composition
    from agentforge.services import sync as svc

    engine = get_engine(settings)
    with session_scope(engine) as session:
        market = repos_q.get_repository(session=session, name=report.marketplace)
        market_url = market.url
        market_tip = (market.synced_refs or {}).get("refs", {}).get(f"refs/heads/{market.default_branch}")
        entries = {str(e.get("component")): e for e in _external_entries(market.manifest)}
        repos = {r.name: r for r in session.scalars(sa.select(Repository).where(
            Repository.name.in_([s.repository for s in report.sources if s.repository])))}
        facts = {name: (r.id, r.url, r.source_format, dict((r.synced_refs or {}).get("refs", {})), r.default_branch)
                 for name, r in repos.items()}
    for source in report.sources:
        if source.status == "not-followed" or source.repository is None:
            continue
        repo_id, url, source_format, refs, default_branch = facts[source.repository]
        if not refs:
            source.message = source.message or f"{source.repository} is not synced yet"
            continue
        commit, why = _pinned_commit(source.version, refs, default_branch)
        if commit is None:
            source.message = f"{source.repository} has {why}"
            continue
        source.commit = commit
        with repos_q.repository_sync_lock(engine, repo_id):
            mirror = svc.open_mirror(settings, repo_id, url)
            try:
                try:
                    mirror.fetch_commit(commit)  # a pin that is no release point; also keeps it pinned
                except AgentForgeError as exc:
                    source.message = f"commit {commit[:12]} of {source.repository}: {exc.message}"
                    continue
                # The whole commit, as a sync reads a release point (its rows are written below, so
                # a pin that is no release point resolves); then the plugin's part of it.
                snap = read_catalog_snapshot(mirror, commit, label=commit[:12],
                                             format=svc.forced_format(source_format))
                prefix = (source.path or "").strip("/")
                members = [r for r in snap.components
                           if not prefix or r.path == prefix or r.path.startswith(prefix + "/")]
                rows = [] if snap.fatal else list(snap.components)
                plugin_snap = snap
                if prefix and not members:  # a plugin folder that the repository's own layout does not list
                    plugin_snap = read_catalog_snapshot(mirror, commit, label=commit[:12], plugin_folder=prefix)
                    members = [] if plugin_snap.fatal else list(plugin_snap.components)
                    rows += members
                commit_time = mirror.commit_time(commit)
            finally:
                mirror.close()
            # Rows for the pinned commit, as a sync of it would write them (existing ones are kept).
            with session_scope(engine) as session:
                repos_q.insert_components(session=session, rows=[svc._row(repo_id, url, commit, rec) for rec in rows])
        if not members:
            why = plugin_snap.fatal or (f"no components under {prefix!r}" if prefix else "no components")
            source.message = f"{source.repository} at {commit[:12]}: {why}"
            continue
        entry = entries.get(source.plugin, {})
        own = next((c for c in plugin_snap.compositions if c.path == (prefix or ".")), None)
        version, version_source = None, None
        written = (entry.get("marketplace_entry") or {}).get("version")
        if written is not None and coerce_version(written):
            version, version_source = coerce_version(written), "marketplace"
        elif own is not None:
            version, version_source = own.version, "external plugin"
        else:
            version, version_source = pseudo_version(commit, commit_time), "pseudo"
        deps: dict[str, list[dict[str, Any]]] = {}
        for rec in sorted(members, key=lambda r: (r.kind, r.name)):
            deps.setdefault(_GROUPS[rec.kind], []).append(
                {"name": rec.name, "repository": url, "version": f"commit:{commit}"})
        external = {"repository": url, "version": source.version, "commit": commit}
        if prefix:
            external["path"] = prefix
        metadata: dict[str, Any] = {"name": source.plugin, "version": version, "catalog_format": "claude-marketplace",
                                    "catalog_type": "plugin", "version_source": version_source, "external": external}
        description = (entry.get("marketplace_entry") or {}).get("description") or (own.description if own else None)
        if description:
            metadata["description"] = str(description)
        spec: dict[str, Any] = {"dependencies": deps, "marketplace_entry": {
            "name": source.plugin, **(entry.get("marketplace_entry") or {}), "source": entry.get("source")}}
        definition = {"apiVersion": API_VERSION, "kind": "Composition", "metadata": metadata, "spec": spec}
        try:
            parse_composition(definition, source=f"{report.marketplace}: external plugin {source.plugin}")
        except AgentForgeError as exc:
            source.message = exc.message
            continue
        source.components = len(members)
        source.status, source.message = _write_external_composition(
            definition, name=source.plugin, market_url=market_url, market_tip=market_tip or commit, external_url=url,
            settings=settings)


_GROUPS = {"Tool": "tools", "Prompt": "prompts", "Agent": "agents"}


def _write_external_composition(definition: dict[str, Any], *, name: str, market_url: str, market_tip: str,
                                external_url: str, settings: Settings) -> tuple[str, str]:
    """Insert or refresh the marketplace's composition for an external plugin: (status, message)."""
    from agentforge.reader import CompositionRecord
    from agentforge.services.compose import upsert_from_repository

    metadata = definition["metadata"]
    with session_scope(get_engine(settings)) as session:
        existing = session.scalar(sa.select(Composition).where(Composition.name == name).with_for_update())
        message = ""
        if existing is not None and existing.source_repo not in (market_url, external_url):
            return "unresolved", (f"a composition named {name!r} already comes from "
                                  f"{existing.source_repo or 'a file'}; left alone")
        if existing is not None and existing.source_repo == market_url and existing.definition == definition:
            return "unchanged", f"composition {name} {metadata['version']} (already linked)"
        if existing is not None and existing.source_repo == external_url:
            # The external repository's own composition of the plugin (at its tip): the marketplace's
            # pinned one replaces it, and that repository's syncs leave it alone from now on.
            existing.source_repo = market_url
            session.flush()
            message = f"; replaces {external_url}'s own composition {name} (its tip)"
        upsert_from_repository(session=session, repository_url=market_url, commit=market_tip,
                               compositions=[CompositionRecord(name=name, version=str(metadata["version"]),
                                                               path=".", description=metadata.get("description"),
                                                               definition=definition)])
    return "linked", f"composition {name} {metadata['version']}{message}"


class RepoRemoved(BaseModel):
    """What `repo rm` did: see ``models.repositories.RemovedRepository``."""

    removed: str
    url: str
    compositions_removed: list[str] = []
    compositions_kept: list[str] = []  # with instances, kept under --force
    offered_elsewhere: dict[str, list[str]] = {}  # removed composition → repositories whose next sync stores theirs


def remove_repository(name: str, *, force: bool = False, settings: Settings | None = None) -> RepoRemoved:

    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        removed = repos_q.remove_repository(session=session, name=name, force=force)
        path = mirror_path(settings, removed.id)
    remove_mirror(path)
    return RepoRemoved(removed=removed.name, url=removed.url, compositions_removed=removed.compositions_removed,
                       compositions_kept=removed.compositions_kept, offered_elsewhere=removed.offered_elsewhere)
