"""GitHub webhooks and deploy-on-merge: signatures, event filtering, the delivery record, and the
questions the deploy-on-merge flow asks of Postgres (which compositions use a repository, which
of their instances auto-deploy, which locks are on hold).

No GitHub API call is made anywhere on this path (the webhook carries everything; sync uses
git), so there are no rate-limit headers to honour here: GitHub-calling tasks (publish) carry
the ``github-api`` tag whose Prefect concurrency limit bounds them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from agentforge.config import Settings, get_settings
from agentforge.core.lockfile import LockFile, render_lock
from agentforge.core.urls import normalise_repository_url
from agentforge.db import get_engine, session_scope
from agentforge.errors import AgentForgeError, ConfigError, NotFound
from models import compositions as comp_q
from models import webhooks as hooks_q
from models.enums import InstanceStatus
from models.tables import Composition, CompositionInstance, Repository

MAX_BODY_BYTES = 1024 * 1024  # GitHub caps payloads at 25 MB; ours (push/PR metadata) are far smaller
SIGNATURE_PREFIX = "sha256="


# --- signatures and secrets -------------------------------------------------------------------


def body_digest(body: bytes) -> str:
    """The delivery key: hex SHA-256 of the exact signed bytes."""
    return hashlib.sha256(body).hexdigest()


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub would send (used by tests and tools)."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """Constant-time check of ``X-Hub-Signature-256`` against HMAC-SHA256(secret, body)."""
    if not header or not header.startswith(SIGNATURE_PREFIX) or not secret:
        return False
    return hmac.compare_digest(sign(secret, body).encode("ascii"), header.strip().encode("ascii", "replace"))


def resolve_secret_ref(ref: str, *, repository: str) -> bytes:
    """Read a per-repository secret from its reference (``env:NAME`` or ``file:/path``)."""
    kind, _, target = ref.partition(":")
    if kind == "env" and target:
        value = os.environ.get(target)
        if value:
            return value.encode("utf-8")
        raise ConfigError(f"webhook secret of repository {repository!r}: environment variable {target} is not set",
                          hint=f"Export {target}, or remove the repository from webhook_secret_refs.")
    if kind == "file" and target:
        try:
            return Path(target).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"webhook secret of repository {repository!r}: cannot read {target}: {exc.strerror}",
                              hint="Fix the path in webhook_secret_refs.") from None
    raise ConfigError(f"webhook secret of repository {repository!r}: the reference must be env:NAME or file:PATH",
                      hint="Secrets are referenced, never stored: webhook_secret_refs = {name = \"env:VAR\"}.")


def secret_for(repository: str | None, settings: Settings) -> bytes | None:
    """The repository's own secret when one is referenced, else the global one, else None."""
    if repository is not None and repository in settings.webhook_secret_refs:
        return resolve_secret_ref(settings.webhook_secret_refs[repository], repository=repository)
    if settings.webhook_secret is not None:
        value = settings.webhook_secret.get_secret_value().encode("utf-8")
        return value or None
    return None


# --- events -----------------------------------------------------------------------------------


class MergeEvent(BaseModel):
    """A change to a tracked repository's default branch."""

    event: str
    ref: str
    head_commit: str | None


def payload_urls(payload: Mapping[str, Any]) -> list[str]:
    """The normalised forms of every URL the payload gives for its repository."""
    repo = payload.get("repository")
    if not isinstance(repo, Mapping):
        return []
    found: list[str] = []
    for key in ("clone_url", "html_url", "ssh_url", "git_url", "svn_url"):
        raw = repo.get(key)
        if isinstance(raw, str) and raw:
            url = _normalised_or_none(raw)
            if url is not None and url not in found:
                found.append(url)
    return found


def _normalised_or_none(raw: str) -> str | None:
    """A URL we cannot read names no repository (GitHub sends several forms; one is enough)."""
    try:
        return normalise_repository_url(raw)
    except AgentForgeError:
        return None


def merge_event(event: str, payload: Mapping[str, Any], default_branch: str) -> MergeEvent | None:
    """A ``push`` to the default branch, or a ``pull_request`` closed merged into it; else None."""
    branch_ref = f"refs/heads/{default_branch}"
    if event == "push":
        if payload.get("ref") != branch_ref or payload.get("deleted") is True:
            return None
        after = payload.get("after")
        return MergeEvent(event=event, ref=branch_ref, head_commit=after if _is_sha(after) else None)
    if event == "pull_request":
        pr = payload.get("pull_request")
        if payload.get("action") != "closed" or not isinstance(pr, Mapping) or pr.get("merged") is not True:
            return None
        base = pr.get("base")
        if isinstance(base, Mapping) and base.get("ref") not in (None, default_branch):
            return None
        sha = pr.get("merge_commit_sha")
        return MergeEvent(event=event, ref=branch_ref, head_commit=sha if _is_sha(sha) else None)
    return None


def _is_sha(value: object) -> bool:
    return isinstance(value, str) and len(value) == 40 and all(c in "0123456789abcdef" for c in value) \
        and value != "0" * 40


def parse_payload(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[…" under 1 MiB
        return None
    return data if isinstance(data, dict) else None


# --- the delivery record ----------------------------------------------------------------------


def find_repository(urls: list[str], *, settings: Settings | None = None) -> hooks_q.RepositoryRef | None:
    with session_scope(get_engine(settings)) as session:
        return hooks_q.find_repository(session=session, urls=urls)


def record_delivery(*, body_sha256: str, github_delivery: str | None, merge: MergeEvent,
                    repository: hooks_q.RepositoryRef, settings: Settings | None = None) -> bool:
    """The durable record, committed before anything runs; False for a replayed body."""
    with session_scope(get_engine(settings)) as session:
        return hooks_q.record_delivery(session=session, body_sha256=body_sha256, github_delivery=github_delivery,
                                       event=merge.event, repository=repository, ref=merge.ref,
                                       head_commit=merge.head_commit)


def claim_pending(*, limit: int = 20, lease_seconds: float = 120.0,
                  settings: Settings | None = None) -> list[hooks_q.PendingDelivery]:
    with session_scope(get_engine(settings)) as session:
        return hooks_q.claim_pending(session=session, limit=limit, lease_seconds=lease_seconds)


def mark_started(delivery_id: uuid.UUID, flow_run_id: str, *, settings: Settings | None = None) -> None:
    with session_scope(get_engine(settings)) as session:
        hooks_q.mark_started(delivery_id, flow_run_id, session=session)


def mark_retry(delivery_id: uuid.UUID, error: str, *, attempts: int, max_attempts: int = 8,
               settings: Settings | None = None) -> None:
    """Back off exponentially (2 s … ~4 min); after ``max_attempts`` the row is FAILED for a human."""
    with session_scope(get_engine(settings)) as session:
        hooks_q.mark_retry(delivery_id, error, session=session, retry_in_seconds=min(2.0 ** attempts, 256.0),
                           give_up=attempts >= max_attempts)


def delivery_counts(*, settings: Settings | None = None) -> dict[str, int]:
    with session_scope(get_engine(settings)) as session:
        return hooks_q.delivery_counts(session=session)


# --- deploy-on-merge: what a merge affects ----------------------------------------------------


class DeployTarget(BaseModel):
    """One instance deploy-on-merge considered; ``skip`` says why it is left alone."""

    composition: str
    environment: str
    instance: str
    skip: str | None = None


class RelockPlan(BaseModel):
    """How to re-lock one composition after its repository moved."""

    composition: str
    lock_path: str
    upgrade: list[str] | None  # package keys from the merged repository (None: no previous lock)


def _walk(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _mentions(definition: Mapping[str, Any], url: str, name: str) -> bool:
    """A dependency entry naming the repository (``repository:`` or a ``forge://name/…`` source)."""
    for entry in _walk(definition.get("spec", {})):
        raw = entry.get("repository")
        if isinstance(raw, str):
            if raw == name:
                return True
            if _normalised_or_none(raw) == url:
                return True
        source = entry.get("source")
        if isinstance(source, str) and source.startswith(f"forge://{name}/"):
            return True
    return False


def composition_lock_path(name: str, settings: Settings) -> Path:
    """Where deploy-on-merge keeps a composition's lock file (its pins survive between merges)."""
    return settings.home / "locks" / f"{name}.forge-lock.yaml"


def relock_plans(repository: str, *, settings: Settings | None = None) -> list[RelockPlan]:
    """Compositions that use ``repository``: synced from it, locked to it, or depending on it."""
    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        repo = session.scalar(sa.select(Repository).where(Repository.name == repository))
        if repo is None:
            raise NotFound(f"no repository named {repository!r}", hint="`agentforge repo ls` lists them.")
        plans: list[RelockPlan] = []
        for comp in comp_q.list_compositions(session=session):
            if not comp.is_active:
                continue
            locked_keys = sorted(k for k, p in (comp.lock_file or {}).get("packages", {}).items()
                                 if isinstance(p, Mapping) and p.get("repository") == repo.url)
            if not (comp.source_repo == repo.url or locked_keys or _mentions(comp.definition, repo.url, repo.name)):
                continue
            path = composition_lock_path(comp.name, settings)
            if comp.lock_file and not path.exists():
                # The lock flow keeps the pins of the file it rewrites: seed it from the stored lock
                # (e.g. made by `compose lock`) so only this repository's packages move.
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(render_lock(LockFile.model_validate(comp.lock_file)), encoding="utf-8")
            plans.append(RelockPlan(composition=comp.name, lock_path=str(path),
                                    upgrade=locked_keys if comp.lock_file else None))
        return plans


def lock_identities(lock: Mapping[str, Any] | LockFile) -> set[str]:
    """The hashes a hold or an instance may carry for this lock: its inputs hash and its text's hash."""
    parsed = lock if isinstance(lock, LockFile) else LockFile.model_validate(lock)
    text_hash = "sha256:" + hashlib.sha256(render_lock(parsed).encode("utf-8")).hexdigest()
    return {parsed.content_hash, text_hash}


_DEPLOYED = (InstanceStatus.RUNNING, InstanceStatus.STARTING, InstanceStatus.UPDATING, InstanceStatus.ERROR)


def auto_deploy_enabled(definition: Mapping[str, Any], environment: str) -> bool:
    """``spec.environments.<env>.auto_deploy: true`` in the composition."""
    spec = definition.get("spec")
    envs = spec.get("environments") if isinstance(spec, Mapping) else None
    env = envs.get(environment) if isinstance(envs, Mapping) else None
    return isinstance(env, Mapping) and env.get("auto_deploy") is True


def auto_deploy_targets(composition: str, *, settings: Settings | None = None) -> list[DeployTarget]:
    """Deployed instances of ``composition`` whose environment auto-deploys, each with a skip reason
    when its new lock is on hold, it already runs that lock, or auto-deploy is off."""
    with session_scope(get_engine(settings)) as session:
        comp = session.scalar(sa.select(Composition).where(Composition.name == composition))
        if comp is None:
            raise NotFound(f"no composition named {composition!r}", hint="`agentforge compose ls` lists them.")
        identities = lock_identities(comp.lock_file) if comp.lock_file else set()
        instances = session.scalars(sa.select(CompositionInstance).where(
            CompositionInstance.composition_id == comp.id, CompositionInstance.status.in_(_DEPLOYED))
            .order_by(CompositionInstance.name))
        targets: list[DeployTarget] = []
        held: dict[str, set[str]] = {}
        for inst in instances:
            env = inst.environment or comp.environment or "development"
            target = DeployTarget(composition=composition, environment=env, instance=inst.name)
            if env not in held:
                held[env] = comp_q.held_hashes(comp.id, env, session=session)
            if not auto_deploy_enabled(comp.definition, env):
                target.skip = f"auto_deploy is not enabled for environment {env!r}"
            elif not identities:
                target.skip = "the composition has no lock"
            elif identities & held[env]:
                target.skip = "the new lock is on hold"
            elif inst.lock_hash in identities:
                target.skip = "already running this lock"
            targets.append(target)
        return targets


@dataclass(frozen=True)
class WebhookConfig:
    """What the receiver needs from settings, resolved once at start-up."""

    deployment: str
    has_any_secret: bool


def webhook_config(settings: Settings | None = None) -> WebhookConfig:
    settings = settings or get_settings()
    return WebhookConfig(deployment=settings.on_merge_deployment,
                         has_any_secret=settings.webhook_secret is not None or bool(settings.webhook_secret_refs))
