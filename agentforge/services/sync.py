"""Repository sync as plain functions (no Prefect): ref check, mirror fetch, read, write.

The flow in ``flows/sync.py`` composes these through thin tasks. Order of work for one
repository: take its advisory lock → record intent (SYNC_IN_PROGRESS, an IN_PROGRESS
sync_operations row) and commit → fetch and read git objects with no transaction open →
write everything in one transaction → release the lock. A failure records SYNC_FAILED and
leaves the checkpoint (``synced_refs``, ``last_sync``) where it was.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from agentforge.catalogs import apply_release_tags, catalog_version_from_tag, read_catalog_snapshot, tag_applies_to
from agentforge.config import Settings, get_settings
from agentforge.core.constraints import version_from_tag
from agentforge.core.events import emit
from agentforge.core.gcpause import collector_paused
from agentforge.core.results import RepoSyncResult, SyncPlan
from agentforge.core.urls import github_owner_repo
from agentforge.db import get_engine, session_scope
from agentforge.errors import AgentForgeError, GitError, is_retryable, redact
from agentforge.gitops import GitCredentials, RemoteRefs, RepositoryMirror, is_mirror, ls_remote_many
from agentforge.reader import ComponentRecord, Snapshot
from agentforge.services import compose
from models import ComponentType, TagState
from models import repositories as repos_q
from models.repositories import RepoSyncTarget

_T = TypeVar("_T")

# --- credentials ------------------------------------------------------------------------------


def credentials_for(url: str, settings: Settings | None = None) -> GitCredentials | None:
    """GITHUB_TOKEN, then the configured token, then `gh auth token`; only for GitHub HTTPS URLs.

    Other hosts use git's own credential helper (we never reset it unless we pass a token).
    """
    if github_owner_repo(url) is None:
        return None
    settings = settings or get_settings()
    token = os.environ.get("GITHUB_TOKEN") or (
        settings.github_token.get_secret_value() if settings.github_token else None)
    if not token and shutil.which("gh"):
        try:
            out = subprocess.run(["gh", "auth", "token"], capture_output=True, text=True, timeout=10)
            token = out.stdout.strip() if out.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            token = None
    return GitCredentials(token=token) if token else None


def mirror_path(settings: Settings, repository_id: uuid.UUID) -> str:
    return str(settings.mirrors_dir / f"{repository_id}.git")


def open_mirror(settings: Settings, repository_id: uuid.UUID, url: str) -> RepositoryMirror:
    from pathlib import Path

    return RepositoryMirror(Path(mirror_path(settings, repository_id)), url,
                            credentials=credentials_for(url, settings), timeout=settings.git_timeout_seconds,
                            allow_http=registered_insecure(url))


def registered_insecure(url: str) -> bool:
    """A stored ``http://`` URL: `repo add --allow-insecure` registered it (nothing else stores
    one: the URL check refuses it otherwise), so git may use plain http for it (and only for it)."""
    return url.startswith("http://")


# --- planning ---------------------------------------------------------------------------------


class PlannedSync(SyncPlan):
    """A ``SyncPlan`` that also carries what the batched ref check saw for each repository to
    sync, so their fetches need not ask the remote again.

    ``remote``: repository id → ``{"head": HEAD symref or None, "raw": ref → advertised id}``
    (plain JSON, so it can travel as a task or flow parameter; see :func:`remote_listing`).
    """

    remote: dict[str, dict[str, Any]] = {}


def remote_listing(value: Mapping[str, Any] | None) -> RemoteRefs | None:
    """The ``RemoteRefs`` a ``PlannedSync.remote`` entry stands for (None passes through)."""
    if not value or not isinstance(value.get("raw"), dict):
        return None
    raw = {str(k): str(v) for k, v in value["raw"].items()}
    head = value.get("head")
    return RemoteRefs(head_symref=str(head) if head else None, refs={}, raw=raw)


def plan_sync(names: Sequence[str] | None, *, settings: Settings | None = None) -> PlannedSync:
    """Load targets, recover stale SYNC_IN_PROGRESS, ask every remote for its refs at once.

    Only repositories with a mirror are asked: one without (never synced, or its mirror deleted)
    is synced in any case, and its clone lists the remote itself.

    A plain sync of everything (``names`` empty) leaves out repositories inside their failure
    back-off window (``next_sync_after``), so a broken remote is not hammered by a schedule;
    naming a repository syncs it regardless.
    """
    settings = settings or get_settings()
    engine = get_engine(settings)
    with session_scope(engine) as session:
        targets = repos_q.sync_targets(session=session, names=names)
    recovered = {t.id for t in targets if t.status == "SYNC_IN_PROGRESS" and repos_q.recover_if_stale(engine, t.id)}
    plan = PlannedSync(names={str(t.id): t.name for t in targets})
    now = datetime.now(UTC)
    active: list[RepoSyncTarget] = []
    for t in targets:
        if not t.is_active:
            plan.skipped[str(t.id)] = "disabled (`agentforge repo enable` turns it back on)"
        elif (not names and t.id not in recovered and t.status == "SYNC_FAILED"
              and t.next_sync_after is not None and t.next_sync_after > now):
            plan.skipped[str(t.id)] = (f"backing off after a failed sync until "
                                       f"{t.next_sync_after:%Y-%m-%d %H:%M:%S} UTC (name it to sync now)")
            plan.failed_codes[str(t.id)] = BACKING_OFF  # still failed: `agentforge sync` exits 1
        else:
            active.append(t)
    # A repository without a mirror is cloned whatever its remote holds, and the clone lists the
    # remote itself: asking it first would only cost a second round trip (and two processes).
    has_mirror = {t.id: is_mirror(mirror_path(settings, t.id)) for t in active}
    token_urls: dict[str, GitCredentials | None] = {t.url: credentials_for(t.url, settings)
                                                    for t in active if has_mirror[t.id]}
    by_creds: dict[tuple[GitCredentials | None, bool], list[str]] = defaultdict(list)
    for url, creds in token_urls.items():
        by_creds[(creds, registered_insecure(url))].append(url)
    remote: dict[str, RemoteRefs | GitError] = {}
    for (creds, http), urls in by_creds.items():
        remote.update(ls_remote_many(urls, concurrency=max(8, settings.sync_concurrency), credentials=creds,
                                     timeout=settings.git_timeout_seconds, allow_http=http))
    for t in active:
        if not has_mirror[t.id]:
            plan.to_sync.append(str(t.id))
            continue
        outcome = remote[t.url]
        if isinstance(outcome, GitError):
            plan.failed[str(t.id)] = outcome.message
            plan.failed_codes[str(t.id)] = outcome.code
            continue
        refs = _release_relevant(outcome.refs)
        if t.status == "SYNCED" and refs == t.synced_refs:
            plan.unchanged.append(str(t.id))
        else:
            plan.to_sync.append(str(t.id))
            if outcome.raw is not None:
                plan.remote[str(t.id)] = {"head": outcome.head_symref, "raw": dict(outcome.raw)}
    return plan


def plan_results(plan: SyncPlan) -> list[RepoSyncResult]:
    """The results of the repositories the plan settled without per-repository work."""
    results = [RepoSyncResult(name=plan.names[i], status="unchanged", message="up to date") for i in plan.unchanged]
    results += [RepoSyncResult(name=plan.names[i], status="failed", error=e, error_code=plan.failed_codes.get(i))
                for i, e in plan.failed.items()]
    results += [RepoSyncResult(name=plan.names[i], status="skipped", message=why, error_code=plan.failed_codes.get(i))
                for i, why in plan.skipped.items()]
    return results


#: ``error_code`` of a repository left out of a sync of everything because its last sync failed
#: and its back-off window is still open: not tried, but still failed.
BACKING_OFF = "SYNC_BACKING_OFF"


def _retrying(step: Callable[[], _T], *, delays: Sequence[float]) -> _T:
    """Run ``step``, retrying transient failures (``is_retryable``) after each delay in turn."""
    for delay in delays:
        try:
            return step()
        except Exception as exc:
            if not is_retryable(exc):
                raise
        time.sleep(delay)
    return step()


def check_and_record(names: Sequence[str] | None, *, settings: Settings | None = None) -> PlannedSync:
    """The first step of every sync as one plain call: the batched ref check, then the set-based
    writes for the unchanged and unreachable repositories, then the ``sync.planned`` event.

    The CLI runs this itself and starts the Prefect flow only when ``to_sync`` is not empty,
    handing it the plan (a no-op sync then costs no flow run and no Prefect import).
    """
    # The same retries as the flow's check-remote-refs and record-sync-outcomes tasks.
    plan = _retrying(lambda: plan_sync(names, settings=settings), delays=(2, 10))
    _retrying(lambda: record_plan_outcomes(plan, settings=settings), delays=(1, 4, 10))
    emit("sync.planned", total=len(plan.names), to_sync=len(plan.to_sync), unchanged=len(plan.unchanged),
         failed=len(plan.failed))
    return plan


def _release_relevant(refs: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in refs.items() if k.startswith(("refs/heads/", "refs/tags/"))}


def record_plan_outcomes(plan: SyncPlan, *, settings: Settings | None = None) -> None:
    """One transaction for every repository that needs no per-repository work."""
    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        repos_q.record_unchanged(session=session, repository_ids=[uuid.UUID(i) for i in plan.unchanged])
        repos_q.record_failures(session=session, failures={uuid.UUID(i): e for i, e in plan.failed.items()},
                                backoff_seconds=settings.sync_failure_backoff_seconds)


# --- one repository ---------------------------------------------------------------------------


@dataclass
class _ReleaseFacts:
    tags_at: dict[str, list[str]] = field(default_factory=dict)   # commit → release tags (effective)
    problems: list[str] = field(default_factory=list)
    new_tags: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    moved: dict[str, str] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    reappeared: list[str] = field(default_factory=list)


def _classify_tags(tags: Mapping[str, str], ledger: Mapping[str, repos_q.LedgerEntry], *,
                   repository: str = "REPO") -> _ReleaseFacts:
    facts = _ReleaseFacts()
    for ref, commit in sorted(tags.items()):
        tag = ref.removeprefix("refs/tags/")
        if version_from_tag(tag) is None and catalog_version_from_tag(tag) is None:
            continue  # not a release tag (in any shape we know): ignored
        entry = ledger.get(tag)
        if entry is None:
            facts.new_tags[tag] = (commit, {})
            facts.tags_at.setdefault(commit, []).append(tag)
        elif entry.first_commit == commit:
            if entry.state == TagState.DELETED:
                facts.reappeared.append(tag)
            facts.tags_at.setdefault(commit, []).append(tag)
        else:
            # Moved: the release stays the first commit, held back until `repo accept-tag`.
            if entry.state != TagState.MOVED or entry.current_commit != commit:
                facts.moved[tag] = commit
                facts.problems.append(
                    f"tag {tag} moved from {entry.first_commit[:12]} to {commit[:12]}: version held back "
                    f"until `agentforge repo accept-tag {repository} {tag}`")
            facts.tags_at.setdefault(entry.first_commit, []).append(tag)
    present = {r.removeprefix("refs/tags/") for r in tags}
    for tag, entry in ledger.items():
        if tag not in present and entry.state != TagState.DELETED:
            facts.deleted.append(tag)
            facts.problems.append(f"tag {tag} was deleted upstream; its commit {entry.first_commit[:12]} stays pinned")
    return facts


def _row(repo_id: uuid.UUID, url: str, commit: str, rec: ComponentRecord) -> dict[str, Any]:
    return dict(
        id=uuid.uuid4(), name=rec.name, type=ComponentType(rec.kind.upper()), version=rec.version,
        repository_id=repo_id, repository_url=url, path=rec.path, commit_hash=commit,
        definition=rec.definition, schema=rec.schema, metadata_=rec.metadata, tree_hash=rec.tree_hash,
        release_tags=[], is_release=False, is_reused_version=False,
    )


def is_catalog(row: repos_q.ComponentRowFacts) -> bool:
    """A row read by a catalog adapter (its metadata names the source format), not a native one."""
    return bool(row.metadata.get("catalog_format"))


def forced_format(source_format: str | None) -> str | None:
    """The format `repo add --format` forced (stored as ``forced:<format>``), or None: detect."""
    if source_format and source_format.startswith(FORCED_PREFIX):
        return source_format.removeprefix(FORCED_PREFIX)
    return None


#: ``repositories.source_format`` of a forced format; a detected one is stored bare.
FORCED_PREFIX = "forced:"


def compute_release_flags(
    rows: Sequence[repos_q.ComponentRowFacts], tags_at: Mapping[str, list[str]], tip: str | None,
    commit_time: Mapping[str, float], *, deleted: set[str], generation: Mapping[str, int] | None = None,
) -> tuple[dict[uuid.UUID, tuple[list[str], bool, bool]], list[str]]:
    """Per row: (release tags, is_release, is_reused_version), and the problems found.

    Repository-wide tags release every component at their commit; ``name@X.Y.Z`` tags only
    that component, and only when its version matches. Without any release tag, the default
    branch tip is the only release; so it is for a catalog component no tag covers. A version
    released at several commits belongs to the oldest; a later one with different files is a
    reused version, ignored for resolution.
    Commits with the same commit time are ordered by ``generation`` (``RepositoryMirror.generations``:
    an ancestor comes before its descendants), then by id.
    """
    generation = generation or {}
    problems: list[str] = []
    result: dict[uuid.UUID, tuple[list[str], bool, bool]] = {}
    any_release_tag = bool(tags_at)
    candidates: dict[tuple[str, str, str], list[repos_q.ComponentRowFacts]] = defaultdict(list)
    row_tags: dict[uuid.UUID, list[str]] = {}
    # Each tag parsed once, not once per row at its commit (a catalog commit holds thousands).
    shapes = {tag: (tv, str(tv.version) if tv is not None else "", catalog_version_from_tag(tag))
              for tags in tags_at.values() for tag in tags for tv in (version_from_tag(tag),)}
    for row in rows:
        tags: list[str] = []
        for tag in tags_at.get(row.commit_hash, []):
            if tag in deleted:
                continue
            tv, tag_version, catalog_shape = shapes[tag]
            if tv is None:
                # A catalog tag shape (`name--v1.2.0`, `path/1.2.0`): the reader already gave the
                # components it scopes the tag's version (apply_release_tags), so scope decides.
                found = catalog_shape
                if found is not None and tag_applies_to(found[0], name=row.name, path=row.path,
                                                        metadata=row.metadata):
                    tags.append(tag)
                continue
            if tv.component is None:
                tags.append(tag)
            elif tv.component == row.name or (
                    is_catalog(row) and tag_applies_to(tv.component, name=row.name, path=row.path,
                                                       metadata=row.metadata)):
                if tag_version == row.version:
                    tags.append(tag)
                elif tag not in row.release_tags:
                    problems.append(f"tag {tag}: {row.name} at {row.commit_hash[:12]} has metadata.version "
                                    f"{row.version}, not {tv.version}; tag skipped")
        row_tags[row.id] = sorted(tags)
    # A catalog component that no release tag covers anywhere (the other skills of a repository
    # whose tags are `skill--vX.Y.Z` for a few) is released as in a repository without tags: at
    # the tip, under its pseudo-version (Go's rule for an untagged module; issue 6). A native
    # repository keeps FORMATS §3: once it has any release tag, only tagged commits release.
    tagged = {(row.type, row.name) for row in rows if row_tags[row.id]}
    for row in rows:
        if any_release_tag and (row_tags[row.id] or not is_catalog(row) or (row.type, row.name) in tagged):
            is_release_point = bool(row_tags[row.id])
        else:
            is_release_point = row.commit_hash == tip
        if is_release_point:
            candidates[(row.type, row.name, row.version)].append(row)
    released: set[uuid.UUID] = set()
    reused: set[uuid.UUID] = set()
    for (_kind, name, version), group in candidates.items():
        group.sort(key=lambda r: (commit_time.get(r.commit_hash, 0.0), generation.get(r.commit_hash, 0),
                                  r.commit_hash))
        first = group[0]
        released.add(first.id)
        for later in group[1:]:
            if later.tree_hash != first.tree_hash:
                reused.add(later.id)
                if not later.is_reused_version:
                    problems.append(f"{name} {version} is released again at {later.commit_hash[:12]} with different "
                                    f"files (first at {first.commit_hash[:12]}): reused version ignored")
    for row in rows:
        result[row.id] = (row_tags[row.id], row.id in released, row.id in reused)
    return result, problems


def sync_repository(repository_id: str, *, settings: Settings | None = None,
                    remote: RemoteRefs | Mapping[str, Any] | None = None) -> RepoSyncResult:
    """Sync one repository end to end. Retryable errors are raised (after recording them).

    ``remote``: what the batched ref check saw for this repository (a ``RemoteRefs`` with
    ``raw``, or a ``PlannedSync.remote`` entry); the fetch then skips its own ls-remote.
    The cyclic garbage collector is paused meanwhile (``core.gcpause``: the parsed documents
    and rows form no cycles, and its passes over them were a third of a large catalog's read).
    """
    with collector_paused():
        return _sync_repository(repository_id, settings=settings, remote=remote)


def _sync_repository(repository_id: str, *, settings: Settings | None,
                     remote: RemoteRefs | Mapping[str, Any] | None) -> RepoSyncResult:
    settings = settings or get_settings()
    engine = get_engine(settings)
    repo_id = uuid.UUID(repository_id)
    listing = remote if isinstance(remote, RemoteRefs) or remote is None else remote_listing(remote)
    with repos_q.repository_sync_lock(engine, repo_id):
        with session_scope(engine) as session:
            targets = repos_q.sync_targets(session=session, names=None, ids=[repo_id])
            if not targets:
                return RepoSyncResult(name=repository_id, status="skipped", message="repository removed")
            target = targets[0]
            previous_tip = target.synced_refs.get(f"refs/heads/{target.default_branch}")
            op_id = repos_q.begin_sync(session=session, repository_id=repo_id, source_commit=previous_tip)
            # Read in the intent's transaction (one round trip less); we hold the sync lock.
            ledger = repos_q.tag_ledger(session=session, repository_id=target.id)
            # The stored rows' facts: which commits were read, and their release flags (the write
            # transaction judges them again with the new rows). Their writers (syncs, `repo
            # accept-tag`, `sync --follow-external`) all hold the lock we hold: read once, here.
            existing = repos_q.component_facts(session=session, repository_id=target.id)
        try:
            result, has_forked = _sync_locked(target, op_id, settings, engine, _Stored(ledger, existing), listing)
        except AgentForgeError as exc:
            message = redact(exc.message)
            with session_scope(engine) as session:
                repos_q.finish_sync_failure(session=session, repository_id=repo_id, operation_id=op_id,
                                            error=message, backoff_seconds=settings.sync_failure_backoff_seconds,
                                            interrupted=exc.code == "INTERRUPTED")
            if exc.retryable:
                raise
            return RepoSyncResult(name=target.name, status="failed", error=message, error_code=exc.code)
        except Exception as exc:
            with session_scope(engine) as session:
                repos_q.finish_sync_failure(session=session, repository_id=repo_id, operation_id=op_id,
                                            error=redact(f"internal error: {type(exc).__name__}: {exc}"),
                                            backoff_seconds=settings.sync_failure_backoff_seconds)
            raise
        if not has_forked:
            return result
        # Still under the sync lock, so the freshly fetched mirror is ours. Imported here:
        # publish imports this module (open_mirror). A failure to reconcile is reported, not fatal:
        # the sync itself is recorded and the next sync tries again.
        from agentforge.services.publish import reconcile_published

        try:
            reconcile_published(target.id, settings=settings)
        except AgentForgeError as exc:
            result.problems.append(redact(f"reconciling published changes: {exc.message}"))
        return result


@dataclass(frozen=True)
class _Stored:
    """What the database held for the repository when its sync began."""

    ledger: dict[str, repos_q.LedgerEntry]
    facts: list[repos_q.ComponentRowFacts]

    @property
    def known(self) -> set[str]:
        """The commits read before (every stored row's)."""
        return {row.commit_hash for row in self.facts}


def _sync_locked(target: RepoSyncTarget, op_id: uuid.UUID, settings: Settings, engine: Any, stored: _Stored,
                 remote: RemoteRefs | None) -> tuple[RepoSyncResult, bool]:
    """The sync's work under the repository's lock: (the result, whether installed components of
    the repository are FORKED, so published changes need reconciling with the new tip)."""
    mirror = open_mirror(settings, target.id, target.url)
    fmt = forced_format(target.source_format)  # None: detect at every commit read
    try:
        fetch = mirror.fetch(remote)  # creates the mirror when missing
        refs = fetch.refs
        # The registered branch (remote HEAD at `repo add`, or --branch) while it exists upstream.
        remote_head = fetch.default_branch
        branch = (target.default_branch if f"refs/heads/{target.default_branch}" in refs
                  else remote_head or target.default_branch)
        tip = refs.get(f"refs/heads/{branch}")
        unreadable_heads = sorted(r for r in mirror.unreadable_refs if r.startswith("refs/heads/"))
        if tip is None and unreadable_heads and not any(ref.startswith("refs/heads/") for ref in refs):
            raise GitError(f"{target.name}: no branch has a UTF-8 name (ignored: {', '.join(unreadable_heads)})",
                           code="GIT_REF_NOT_FOUND",
                           hint="Rename the branch upstream to a UTF-8 name, then sync again.")
        if tip is None and not any(ref.startswith("refs/heads/") for ref in refs):
            raise GitError(f"{target.name}: the repository is empty (no branch has a commit yet)",
                           code="GIT_REF_NOT_FOUND",
                           hint=f"Push a commit to it, then run `agentforge sync {target.name}`.")
        if tip is None:
            raise GitError(f"{target.name}: the default branch {branch!r} has no commit",
                           code="GIT_REF_NOT_FOUND", hint="Push a commit, or pick a branch with `repo add --branch`.")
        tags = {k: v for k, v in refs.items() if k.startswith("refs/tags/")}
        facts = _classify_tags(tags, stored.ledger, repository=target.name)
        # Moved tags stay at their first commit (held back there until `repo accept-tag`): they
        # keep that release visible but must not give a version where another tag also stands.
        held = set(facts.moved) | {t for t, e in stored.ledger.items() if e.state == TagState.MOVED}
        problems = list(facts.problems)
        if branch != target.default_branch:
            problems.append(f"branch {target.default_branch} no longer exists upstream: following the remote's "
                            f"default branch {branch} from now on (`agentforge repo add --branch` to pick another)")
        for ref in sorted(mirror.unreadable_refs):
            problems.append(f"{ref} ignored: its name is not UTF-8 text (rename it upstream to use it)")
        # Tags of a tree or a blob release nothing; reported when first seen (or moved), and kept in
        # the checkpoint so the next ref check does not take them for news.
        non_commit = _release_relevant(mirror.non_commit_refs)
        for ref, object_id in sorted(non_commit.items()):
            if (target.synced_refs or {}).get(ref) != object_id:
                problems.append(f"warning: {ref.removeprefix('refs/tags/').removeprefix('refs/heads/')} points at "
                                f"{object_id[:12]}, which is no commit (a tag of a tree or a file): ignored")
        for ref in fetch.forced:
            if ref.startswith("refs/heads/"):
                upd = fetch.updated[ref]
                problems.append(f"branch {ref.removeprefix('refs/heads/')} was force-pushed: "
                                f"{upd.old[:12]} → {upd.new[:12]}")
        release_commits = set(facts.tags_at)
        mirror.pin_many(sorted((release_commits | {tip}) - set(fetch.pins)))  # one update-ref --stdin
        # Read only commits we have not read before (the tip's manifest is re-read: one blob).
        labels: dict[str, str] = {}
        for commit, tag_list in facts.tags_at.items():
            labels[commit] = tag_list[0]
        labels.setdefault(tip, branch)
        snapshots: dict[str, Snapshot] = {}
        for commit in sorted(set(labels) - stored.known):
            snapshots[commit] = _tagged(read_catalog_snapshot(mirror, commit, label=labels[commit], format=fmt),
                                        _versioning_tags(facts.tags_at.get(commit, []), held))
        # A known tip: its components are stored; only the manifest and compositions are re-read.
        tip_snapshot = snapshots.get(tip) or _tagged(
            read_catalog_snapshot(mirror, tip, label=branch, format=fmt, read_components=False),
            _versioning_tags(facts.tags_at.get(tip, []), held))
        if tip_snapshot.fatal:
            raise AgentForgeError(tip_snapshot.fatal, code="MANIFEST_INVALID",
                                  hint="Fix the manifest on the default branch and push; then sync again.")
        for snap in snapshots.values():
            if snap.fatal:
                problems.append(snap.fatal)
            problems.extend(snap.problems)
        new_rows = [
            _row(target.id, target.url, commit, rec)
            for commit, snap in sorted(snapshots.items()) if not snap.fatal for rec in snap.components
        ]
        commit_time = {c: mirror.commit_time(c).timestamp() for c in release_commits | {tip}}
        # Only commits that share a commit time need their order in history (rarely any).
        by_time: dict[float, list[str]] = defaultdict(list)
        for commit, when in commit_time.items():
            by_time[when].append(commit)
        generation = mirror.generations(sorted(c for same in by_time.values() if len(same) > 1 for c in same))
        # Tree ids of each release tag's components as first seen, for the ledger.
        for commit, trees in facts.new_tags.values():
            first_seen = snapshots.get(commit)
            if first_seen is not None:
                trees.update({rec.path: rec.tree_hash or "" for rec in first_seen.components})
    finally:
        mirror.close()

    with session_scope(engine) as session:
        existing = stored.facts
        if _retag_known_catalog_commits(session, target.id, existing, facts.tags_at, problems, held=held):
            existing = repos_q.component_facts(session=session, repository_id=target.id)
        # Release flags are computed over the stored rows and the new ones together, so new rows
        # are inserted with their final flags and only stored rows whose flags change are updated.
        new_facts = [repos_q.ComponentRowFacts(r["id"], r["name"], r["version"], r["commit_hash"], r["tree_hash"],
                                               (), False, False, r["path"], r["metadata_"] or {},
                                               r["type"].value) for r in new_rows]
        flags, flag_problems = compute_release_flags([*existing, *new_facts], facts.tags_at, tip, commit_time,
                                                     deleted=set(facts.deleted), generation=generation)
        for r in new_rows:
            r["release_tags"], r["is_release"], r["is_reused_version"] = flags[r["id"]]
        inserted = repos_q.insert_components(session=session, rows=new_rows)
        if inserted != len(new_rows):
            # Some (path, commit) rows already existed under other ids: judge what is stored now.
            rows = repos_q.component_facts(session=session, repository_id=target.id)
            flags, flag_problems = compute_release_flags(rows, facts.tags_at, tip, commit_time,
                                                         deleted=set(facts.deleted), generation=generation)
        else:
            rows = existing
        problems.extend(flag_problems)
        # Before the outcome is recorded: a composition left out (its name taken) is one of its problems.
        problems.extend(_after_sync_hooks(session, target, tip, tip_snapshot))
        problems = [redact(p) for p in problems]
        changes = [(r.id, *flags[r.id]) for r in rows
                   if (list(r.release_tags), r.is_release, r.is_reused_version) != flags[r.id]]
        repos_q.update_release_flags(session=session, changes=changes)
        repos_q.write_tag_ledger(session=session, repository_id=target.id, new=facts.new_tags, moved=facts.moved,
                                 deleted=facts.deleted, reappeared=facts.reappeared)
        releases = sum(1 for f in flags.values() if f[1])
        message = (f"{inserted} new component rows from {len(snapshots)} new commits read, {releases} releases, "
                   f"{len(tags)} tags, tip {tip[:12]} on {branch}")
        repos_q.finish_sync_success(
            session=session, repository_id=target.id, operation_id=op_id,
            refs={**_release_relevant(refs), **non_commit},
            head=branch, default_branch=branch, manifest=tip_snapshot.manifest,
            manifest_hash=tip_snapshot.manifest_hash, target_commit=tip, message=message,
            problems=problems, source_format=_source_format(fmt, tip_snapshot),
        )
        has_forked = repos_q.after_sync_installed(session=session, repository_id=target.id)
    return RepoSyncResult(name=target.name, status="synced", new_components=inserted, releases=releases,
                          commit=tip, message=message, problems=problems), has_forked


def _retag_known_catalog_commits(session: Any, repository_id: uuid.UUID,
                                 existing: Sequence[repos_q.ComponentRowFacts], tags_at: Mapping[str, list[str]],
                                 problems: list[str], *, held: frozenset[str] | set[str] = frozenset()) -> bool:
    """Catalog rows at commits read before whose release tags changed since (a tag pushed on an
    already-synced commit, a moved tag accepted, a tag deleted): their versions are derived again
    from the tags now there, as a first read would (the tag names the release; without one, the
    version the files give). Native rows keep the rule of :func:`compute_release_flags`. Whether
    any row changed."""
    tags_of: dict[str, set[str]] = defaultdict(set)
    catalog_commits: set[str] = set()
    for row in existing:
        tags_of[row.commit_hash].update(row.release_tags)
        if is_catalog(row):
            catalog_commits.add(row.commit_hash)
    changed = sorted(c for c in catalog_commits if tags_of[c] != set(tags_at.get(c, [])))
    if not changed:
        return False
    updates: list[tuple[uuid.UUID, str, dict[str, Any], dict[str, Any]]] = []
    by_commit: dict[str, list[Any]] = defaultdict(list)
    for stored in repos_q.rows_at_commits(session=session, repository_id=repository_id, commits=changed):
        by_commit[stored.commit_hash].append(stored)
    for commit, all_rows in sorted(by_commit.items()):
        rows = [row for row in all_rows if (row.metadata_ or {}).get("catalog_format")]
        records = [_as_first_read(row) for row in rows]
        snap = apply_release_tags(Snapshot(commit=commit, label=commit[:12], components=records),
                                  _versioning_tags(tags_at.get(commit, []), held))
        problems.extend(snap.problems)
        for row, rec in zip(rows, snap.components, strict=True):
            if (rec.version, rec.definition, rec.metadata) != (row.version, row.definition, row.metadata_ or {}):
                updates.append((row.id, rec.version, rec.definition, rec.metadata))
    repos_q.update_versions(session=session, changes=updates)
    return bool(updates)


_TAG_FIELDS = ("manifest_version", "release_tag")


def _as_first_read(row: Any) -> ComponentRecord:
    """A stored catalog row as the reader gave it, before any tag set its version."""
    metadata = dict(row.metadata_ or {})
    definition = dict(row.definition or {})
    if "manifest_version" in metadata:
        version = str(metadata["manifest_version"])
        metadata = {k: v for k, v in metadata.items() if k not in _TAG_FIELDS} | {"version": version}
        def_meta = {k: v for k, v in (definition.get("metadata") or {}).items() if k not in _TAG_FIELDS}
        definition["metadata"] = def_meta | {"version": version}
    else:
        version = row.version
    return ComponentRecord(name=row.name, kind=row.type.value.title(), version=version, path=row.path,
                           definition=definition, schema=row.schema, metadata=metadata, tree_hash=row.tree_hash)


def _versioning_tags(tags: Sequence[str], held: frozenset[str] | set[str]) -> list[str]:
    """The tags that give versions at a commit: a held-back (moved, not accepted) tag only when no
    other tag stands there, so accepting one tag never hands the commit another tag's held version."""
    free = [t for t in tags if t not in held]
    return free if free else list(tags)


def _tagged(snapshot: Snapshot, tags: Sequence[str]) -> Snapshot:
    """A catalog snapshot with its versions set by the release tags (the tag names the release).
    Native (forge) snapshots are left alone: there a tag whose version disagrees with the
    manifest is skipped and reported by :func:`compute_release_flags`, as before."""
    return apply_release_tags(snapshot, tags) if (snapshot.manifest or {}).get("catalog") else snapshot


def _source_format(forced: str | None, tip: Snapshot) -> str:
    """What ``repositories.source_format`` records: a forced format keeps its ``forced:`` prefix
    (so the next sync forces it again); otherwise the detected catalog format, else forge/scan."""
    if forced is not None:
        return FORCED_PREFIX + forced
    catalog = (tip.manifest or {}).get("catalog")
    detected = catalog.get("format") if isinstance(catalog, dict) else None
    return str(detected) if detected else ("forge" if tip.manifest else "scan")


def _after_sync_hooks(session: Any, target: RepoSyncTarget, tip: str, snapshot: Snapshot) -> list[str]:
    """Compositions listed in the manifest at the tip are upserted, and this repository's that it no
    longer lists removed; the problems (those left out, removed or kept)."""
    return compose.upsert_from_repository(session=session, repository_url=target.url, commit=tip,
                                          compositions=snapshot.compositions, prune=True)
