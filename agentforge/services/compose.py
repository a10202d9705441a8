"""Compositions: rows from files and from synced repositories."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from agentforge.config import Settings
from agentforge.core.deepmerge import parse_set_arguments, set_path
from agentforge.core.documents import CompositionDocument, parse_composition
from agentforge.core.lockfile import LockFile
from agentforge.core.yamlio import load_document
from agentforge.db import get_engine, session_scope
from agentforge.errors import AgentForgeError, ConfigError, Conflict, DeployError, DocumentError
from agentforge.reader import CompositionRecord
from models import Composition
from models import compositions as comp_q


def upsert_from_repository(*, session: Session, repository_url: str, commit: str,
                           compositions: Sequence[CompositionRecord], prune: bool = False) -> list[str]:
    """Compositions listed in a manifest at the tip: insert or refresh (local overrides kept).

    Composition names are unique (``compositions.name``, as the design schema has it), so a
    composition of the same name imported from a file or synced from another repository is left
    alone, and this repository's is not stored. Returns one problem line for each composition
    left out so (the sync reports them), naming both sources. The marketplace's pinned composition
    of one of this repository's plugins (``sync --follow-external``, which took the name over on
    purpose: ``metadata.external.repository`` is this repository) is no problem.
    """
    problems = _drop_compositions_gone_from_tip(session, repository_url, {c.name for c in compositions}) \
        if prune else []
    if not compositions:
        return problems
    rows: list[dict[str, Any]] = [
        dict(name=c.name, version=c.version, description=c.description, definition=c.definition)
        for c in compositions
    ]
    written = comp_q.upsert_synced(session=session, source_repo=repository_url, source_commit=commit, rows=rows)
    left_out = [c for c in compositions if c.name not in written]
    if not left_out:
        return problems
    holders = comp_q.name_holders(session=session, names=[c.name for c in left_out])
    for c in left_out:
        source, repo_name, external = holders.get(c.name, (None, None, None))
        if external == repository_url:
            continue  # the marketplace's pinned composition of this repository's plugin
        taken_by = (f"the composition {c.name} synced from {source}" + (f" (repository {repo_name})" if repo_name
                                                                       else "")
                    if source else f"the composition {c.name} imported from a file")
        where = f" (at {c.path})" if c.path not in ("", ".") else ""
        problems.append(f"composition {c.name} {c.version}{where} of {repository_url} not stored: its name is taken "
                        f"by {taken_by}; composition names are unique across repositories")
    return problems


def _drop_compositions_gone_from_tip(session: Session, repository_url: str, at_tip: set[str]) -> list[str]:
    """Compositions synced from this repository that its tip no longer lists (a plugin removed
    upstream; the repository re-read with another ``--format``) are deleted, as ``repo rm`` deletes
    them; one that has instances is kept (its instances and deployment history need it) and said so.
    A marketplace's linked external plugins (``sync --follow-external``) are left to that command."""
    gone = comp_q.instances_by_composition(repository_url, session=session, except_names=at_tip, synced_only=True)
    if not gone:
        return []
    removed = comp_q.delete_from_source(repository_url, session=session,
                                        names=[name for name, refs in gone.items() if not refs])
    problems = [f"composition {name} is no longer at the tip of {repository_url}: removed" for name in removed]
    problems += [f"composition {name} is no longer at the tip of {repository_url}: kept, it has instances "
                 f"({', '.join(refs)})" for name, refs in sorted(gone.items()) if refs]
    return problems


# --- compositions from files, and what users do with them ---------------------------------------

GROUP_OF_KIND = {"Tool": "tools", "Prompt": "prompts", "Agent": "agents"}
KIND_OF_GROUP = {v: k for k, v in GROUP_OF_KIND.items()}


class ImportOutcome(BaseModel):
    name: str
    version: str
    status: str  # created | updated | unchanged


def read_composition_file(path: Path) -> tuple[CompositionDocument, dict[str, Any]]:
    """Parse and validate a composition file; every error names the file (and the field)."""
    from agentforge.fileio import read_document_file

    mapping = load_document(read_document_file(path, what="composition"), source=str(path))
    if mapping is not None and not isinstance(mapping, dict):
        raise DocumentError(f"{path}: expected a mapping at the top level (a Composition document), "
                            f"got a {type(mapping).__name__}",
                            hint="A composition file starts with apiVersion: forge.dev/v1 and kind: Composition.")
    doc = parse_composition(mapping if mapping is not None else b"", source=str(path))
    return doc, doc.raw


def import_file(path: Path, *, settings: Settings | None = None) -> ImportOutcome:
    """Insert or refresh a composition from a file; the same file twice changes nothing.

    A composition synced from a repository is not replaced by a file of the same name (the
    next sync would silently undo it): the user is pointed at `compose override`.
    """
    doc, definition = read_composition_file(path)
    from agentforge.core.constraints import parse_constraint

    for dep in doc.dependencies():  # a constraint that can never parse is refused now, not at lock time
        parse_constraint(dep.version, declared_by=f"{path}: spec.dependencies.{dep.group} {dep.component}")
    with session_scope(get_engine(settings)) as session:
        existing = comp_q.find_composition(doc.name, session=session)
        if existing is None:
            comp_q.insert_composition(session=session, name=doc.name, version=doc.version,
                                      description=doc.metadata.description, definition=definition)
            return ImportOutcome(name=doc.name, version=doc.version, status="created")
        if existing.source_repo is not None:
            raise Conflict(f"{path}: composition {doc.name!r} is synced from {existing.source_repo}",
                           hint=f"Change it there, or keep your changes with `agentforge compose override {doc.name}`.")
        if existing.definition == definition:
            return ImportOutcome(name=doc.name, version=doc.version, status="unchanged")
        existing.definition = definition
        existing.version = doc.version
        existing.description = doc.metadata.description
        return ImportOutcome(name=doc.name, version=doc.version, status="updated")


def composition_summary(row: Composition) -> dict[str, Any]:
    return {"name": row.name, "version": row.version, "description": row.description,
            "source": row.source_repo or "file", "source_commit": row.source_commit,
            "locked": row.lock_file is not None, "is_deployed": row.is_deployed, "environment": row.environment,
            "deployed_at": row.deployed_at, "has_local_changes": row.has_local_changes}


def list_compositions(*, settings: Settings | None = None) -> list[dict[str, Any]]:
    with session_scope(get_engine(settings)) as session:
        return [composition_summary(row) for row in comp_q.list_compositions(session=session)]


def show_composition(name: str, *, settings: Settings | None = None) -> dict[str, Any]:
    with session_scope(get_engine(settings)) as session:
        row = comp_q.get_composition(name, session=session)
        out = composition_summary(row)
        lock = row.lock_file or {}
        out.update(definition=row.definition, local_overrides=row.local_overrides or {},
                   lock_content_hash=lock.get("content_hash"),
                   locked_packages={p.get("component", k): p.get("version")
                                    for k, p in sorted((lock.get("packages") or {}).items())},
                   instances=[{"name": i.name, "status": i.status.value, "environment": i.environment, "url": i.url}
                              for i in row.instances])
        return out


# --- validation --------------------------------------------------------------------------------


class ResolvedComponent(BaseModel):
    key: str
    name: str
    kind: str
    version: str


class ValidationReport(BaseModel):
    name: str
    ok: bool
    problems: list[str] = []
    components: list[ResolvedComponent] = []
    environments: list[str] = []


def components_of_lock(lock: LockFile) -> dict[str, ResolvedComponent]:
    """Resolved components by name; two components of one name (from two repositories) are refused:
    an override, a bundle folder and the runtime all address components by name."""
    out: dict[str, ResolvedComponent] = {}
    for key, pkg in sorted(lock.packages.items()):
        if pkg.component in out:
            raise DeployError(f"the composition resolves two components named {pkg.component!r}: "
                              f"{out[pkg.component].key} and {key}", code="COMPONENT_NAME_CLASH",
                              hint="Compositions address components by name; depend on only one of them.")
        out[pkg.component] = ResolvedComponent(key=key, name=pkg.component, kind=pkg.kind, version=pkg.version)
    return out


def check_override_targets(overrides: Mapping[str, Any] | None, kinds: Mapping[str, str], *,
                           where: str) -> list[str]:
    """Problems (one line each) of override entries naming components the composition does not resolve.

    ``kinds``: resolved component name → Tool/Prompt/Agent.
    """
    problems: list[str] = []
    for group, entries in (overrides or {}).items():
        kind = KIND_OF_GROUP.get(group)
        if kind is None:
            problems.append(f"{where}.{group}: unknown override group (expected tools, prompts or agents)")
            continue
        for name in entries or {}:
            found = kinds.get(name)
            if found is None:
                problems.append(f"{where}.{group}.{name}: no component {name!r} in the resolved composition "
                                f"(resolved: {', '.join(sorted(kinds)) or 'none'})")
            elif found != kind:
                problems.append(f"{where}.{group}.{name}: {name!r} is a {found}, not a {kind}")
    return problems


def environment_problem(doc: CompositionDocument, environment: str) -> str | None:
    """A composition that declares environments only deploys to those (a typo must not deploy bare settings)."""
    envs = doc.spec.environments
    if envs and environment not in envs:
        return (f"composition {doc.name}: spec.environments.{environment}: no such environment "
                f"(declared: {', '.join(sorted(envs))})")
    return None


def validate_composition(name: str, environment: str | None = None, *,
                         settings: Settings | None = None) -> ValidationReport:
    """Can NAME be resolved, do its and the user's overrides name resolved components, does ENV exist?"""
    from agentforge.services.lock import resolve_root

    with session_scope(get_engine(settings)) as session:
        row = comp_q.get_composition(name, session=session)
        definition, local = row.definition, row.local_overrides
    source = f"composition {name}"
    doc = parse_composition(definition, source=source)
    report = ValidationReport(name=name, ok=True, environments=sorted(doc.spec.environments))
    if environment is not None and (problem := environment_problem(doc, environment)):
        report.problems.append(problem)
    try:
        outcome = resolve_root(name, force_kind="composition", compute_checksums=False, settings=settings)
        components = components_of_lock(outcome.lock)
    except AgentForgeError as exc:
        report.problems.append(f"{source}: cannot be resolved: {exc.message}")
    else:
        report.components = list(components.values())
        kinds = {n: c.kind for n, c in components.items()}
        report.problems += check_override_targets(doc.spec.overrides.model_dump(), kinds,
                                                  where=f"{source}: spec.overrides")
        report.problems += check_override_targets(local, kinds, where=f"{source}: local overrides")
    report.ok = not report.problems
    return report


# --- the user's own overrides ---------------------------------------------------------------------


def set_local_override(name: str, component: str, assignments: Sequence[str], *,
                       settings: Settings | None = None) -> dict[str, Any]:
    """``compose override NAME --component C --set PATH=VALUE``: kept in ``local_overrides``.

    The component must be one the composition resolves to (its kind decides the group), so
    a typo is refused now rather than at the next deploy. Sync never touches this column.
    """
    from agentforge.services.lock import resolve_root

    parsed = parse_set_arguments(assignments)
    if not parsed:
        raise ConfigError("nothing to set", hint="Give at least one --set PATH=VALUE.")
    with session_scope(get_engine(settings)) as session:
        comp_q.get_composition(name, session=session)
    outcome = resolve_root(name, force_kind="composition", compute_checksums=False, settings=settings)
    components = components_of_lock(outcome.lock)
    target = components.get(component)
    if target is None:
        raise ConfigError(f"composition {name}: --component {component}: no such component in the resolved "
                          f"composition (resolved: {', '.join(sorted(components)) or 'none'})",
                          code="OVERRIDE_UNKNOWN_COMPONENT", hint="`agentforge compose validate NAME` lists them.")
    group = GROUP_OF_KIND[target.kind]
    with session_scope(get_engine(settings)) as session:
        row = comp_q.get_composition(name, session=session, for_update=True)
        local = copy.deepcopy(row.local_overrides or {})
        entry = local.setdefault(group, {}).setdefault(component, {})
        for path, value in parsed:
            set_path(entry, path, value)
        row.local_overrides = local
        row.has_local_changes = True
        return local


def clear_local_overrides(name: str, component: str | None = None, *, settings: Settings | None = None) -> None:
    with session_scope(get_engine(settings)) as session:
        row = comp_q.get_composition(name, session=session, for_update=True)
        local = copy.deepcopy(row.local_overrides or {})
        if component is None:
            local = {}
        else:
            for group in list(local):
                local[group].pop(component, None)
                if not local[group]:
                    del local[group]
        row.local_overrides = local or None
        row.has_local_changes = bool(local)
