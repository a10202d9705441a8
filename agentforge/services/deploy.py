"""Deploy compositions: frozen locks → immutable bundles → merged configuration → running instances.

The steps, each a plain function the deploy flow wraps in one task:

1. :func:`frozen_lock` — the composition's stored lock, refused when stale (its inputs changed);
   :func:`lock_composition` makes one when there is none.
2. :func:`build_bundle` — files of every locked package, checksums verified, exported from the
   mirrors into ``<home>/bundles/<composition>/<lock hash>-<env>/`` (built in a temporary folder
   and renamed, so a bundle is complete or absent; an existing one is re-verified and reused).
3. :func:`prepare_deployment` — FORMATS §4 merge into the instance's ``resolved.json`` (written
   beside its log, not into the shared bundle), the instance and ``deployments`` rows.
4. :func:`start_candidate` — a new process on a new port; wait for readiness. The previous
   process keeps serving meanwhile.
5. :func:`complete_deployment` — switch the instance row to the new process and stop the old,
   or record the failure, stop the candidate and leave the previous one serving.

A bundle's "lock hash" is the SHA-256 of the rendered lock file: unlike the lock's
``content_hash`` (a hash of the *inputs*), it changes whenever a re-lock picks other commits.

Nothing here imports Prefect: lifecycle commands (`instance start|stop|health`) call it directly.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from agentforge.config import Settings, get_settings
from agentforge.core.deepmerge import deep_merge, get_path, parse_path, parse_set_arguments, set_path
from agentforge.core.documents import CompositionDocument, parse_composition
from agentforge.core.faults import checkpoint
from agentforge.core.hashing import component_checksum, sha256_hex
from agentforge.core.lockfile import LockFile, render_lock
from agentforge.db import database_url, get_engine, session_scope
from agentforge.errors import AgentForgeError, ConfigError, DeployError, LockError, NotFound
from agentforge.runtime import supervisor
from agentforge.services.compose import (
    GROUP_OF_KIND,
    check_override_targets,
    components_of_lock,
    environment_problem,
)
from models import CompositionInstance, DeploymentStatus, InstanceStatus
from models import compositions as comp_q

DEFAULT_STARTUP_TIMEOUT = 60.0
BUNDLE_MANIFEST = "bundle.json"


class ReadinessFailed(DeployError):
    """The new instance never became ready; the deploy was rolled back (an outage-class failure: exit 1)."""

    code = "READINESS_FAILED"
    exit_code = 1


class BundleInfo(BaseModel):
    path: str
    lock_hash: str
    reused: bool


class PreviousRun(BaseModel):
    pid: int
    port: int | None
    url: str | None
    lock_hash: str | None
    bundle_path: str | None


class DeployPlan(BaseModel):
    """Everything the start and switch steps need (ids and paths only: it crosses task boundaries)."""

    composition: str
    composition_id: str
    instance_id: str
    instance_name: str
    environment: str
    deployment_id: str
    lock_hash: str
    bundle_path: str
    resolved_path: str
    log_path: str
    readiness_path: str
    startup_timeout: float
    previous: PreviousRun | None = None
    reuse_port: int | None = None
    unchanged: bool = False  # the instance already runs this lock and configuration


class StartOutcome(BaseModel):
    ready: bool
    pid: int
    port: int
    url: str
    log_tail: str = ""


class InstanceResult(BaseModel):
    composition: str
    instance: str
    instance_id: str
    environment: str
    status: str
    url: str | None
    lock_hash: str | None
    ok: bool
    rolled_back: bool = False
    message: str = ""


# --- locks ------------------------------------------------------------------------------------


def lock_hash_of(lock: LockFile) -> str:
    return "sha256:" + sha256_hex(render_lock(lock).encode("utf-8"))


def short(lock_hash: str | None) -> str:
    return (lock_hash or "")[7:19] or "-"


def lock_composition(name: str, *, upgrade: bool = False, settings: Settings | None = None) -> LockFile:
    """Resolve the composition and store the lock in ``compositions.lock_file``.

    The stored lock's pins are kept (minimal churn) unless ``upgrade``: then the newest
    versions the constraints allow are chosen.
    """
    from agentforge.services.lock import persist_resolution, resolve_root

    settings = settings or get_settings()
    previous = _stored_lock(name, settings)
    pins = {k: p.commit for k, p in previous.packages.items()} if previous and not upgrade else None
    outcome = resolve_root(name, force_kind="composition", pins=pins, previous=previous, settings=settings)
    # Overrides naming a component the graph does not hold are refused here too, as by validate
    # and deploy: a lock that no deploy could use is not stored.
    with session_scope(get_engine(settings)) as session:
        definition = comp_q.get_composition(name, session=session).definition
    doc = parse_composition(definition, source=f"composition {name}")
    kinds = {p.component: p.kind for p in outcome.lock.packages.values()}
    if problems := check_override_targets(doc.spec.overrides.model_dump(), kinds,
                                          where=f"composition {name}: spec.overrides"):
        raise ConfigError("\n".join(problems), code="OVERRIDE_INVALID",
                          hint="Override only components the composition resolves (`agentforge deps tree NAME`).")
    persist_resolution(outcome.lock, composition_id=outcome.composition_id, settings=settings)
    return outcome.lock


def _stored_lock(name: str, settings: Settings) -> LockFile | None:
    with session_scope(get_engine(settings)) as session:
        stored = comp_q.get_composition(name, session=session).lock_file
    return LockFile.model_validate(stored) if stored else None


def frozen_lock(name: str, *, settings: Settings | None = None) -> LockFile | None:
    """The stored lock, verified current (content hash of the composition's inputs); None when unlocked.

    Files are verified against the lock when the bundle is built (or re-verified when reused).
    """
    from agentforge.services.lock import check_lock

    settings = settings or get_settings()
    lock = _stored_lock(name, settings)
    if lock is None:
        return None
    with tempfile.TemporaryDirectory(prefix="agentforge-lock-") as tmp:
        path = Path(tmp) / "forge-lock.yaml"
        path.write_text(render_lock(lock), encoding="utf-8")
        result = check_lock(name, path, force_kind="composition", verify_files=False, settings=settings)
    if not result.ok:
        raise LockError(f"composition {name}: its stored lock is not current: " + "; ".join(result.reasons),
                        code="LOCK_STALE", hint=f"Run `agentforge compose lock {name}`, then deploy again.")
    return lock


def check_not_held(name: str, environment: str, lock: LockFile, *, force: bool,
                   settings: Settings | None = None) -> str:
    """The lock's hash; refused when a rollback put it on hold for this environment (unless forced)."""
    lock_hash = lock_hash_of(lock)
    with session_scope(get_engine(settings)) as session:
        comp = comp_q.get_composition(name, session=session)
        held = comp_q.held_hashes(comp.id, environment, session=session)
    if lock_hash in held and not force:
        raise DeployError(f"composition {name}: lock {short(lock_hash)} is on hold in {environment} "
                          f"(it was rolled back)", code="LOCK_HELD",
                          hint=f"Lock a newer version, run `agentforge compose release-hold {name} --env "
                               f"{environment}`, or deploy with --force.")
    return lock_hash


# --- bundles ----------------------------------------------------------------------------------


def _bundle_dir(settings: Settings, name: str, lock_hash: str, environment: str) -> Path:
    check_environment_name(environment)  # a folder name: never `../…` (a flow run from the UI too)
    return settings.bundles_dir / name / f"{lock_hash[7:23]}-{environment}"


def _files_under(folder: Path) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() or path.is_symlink():
            out.append((path.relative_to(folder).as_posix(), path.read_bytes() if path.is_file() else b""))
    return out


def _verify_bundle(folder: Path, lock: LockFile, lock_hash: str) -> list[str]:
    """Problems of an existing bundle: a different lock, or files that no longer match its checksums."""
    try:
        manifest = json.loads((folder / BUNDLE_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [f"{folder / BUNDLE_MANIFEST} is missing or unreadable"]
    if manifest.get("lock_hash") != lock_hash:
        return [f"{folder} holds lock {short(manifest.get('lock_hash'))}, not {short(lock_hash)}"]
    problems = []
    for pkg in lock.packages.values():
        # Symlinks are recreated by export; hash their target's bytes like git stores them.
        files = []
        for rel, data in _files_under(folder / "components" / pkg.component):
            path = folder / "components" / pkg.component / rel
            files.append((rel, os.readlink(path).encode() if path.is_symlink() else data))
        if component_checksum(files) != pkg.checksum:
            problems.append(f"{folder}/components/{pkg.component}: files differ from checksum {pkg.checksum}")
    return problems


def build_bundle(name: str, environment: str, lock: LockFile, *, settings: Settings | None = None) -> BundleInfo:
    """The immutable bundle of (composition, lock, environment), built once and re-verified on reuse."""
    settings = settings or get_settings()
    components_of_lock(lock)  # two components of one name cannot share components/<name>
    lock_hash = lock_hash_of(lock)
    final = _bundle_dir(settings, name, lock_hash, environment)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Builders of one bundle take turns (the kernel drops the lock of a killed one), so the
    # staging folders of builds that died can be removed here without touching a live one.
    locks = settings.home / "locks"  # outside bundles/, whose folders are the bundles themselves
    locks.mkdir(parents=True, exist_ok=True)
    with (locks / f"bundle-{name}-{final.name}.lock").open("a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        for stale in final.parent.glob(f".{final.name}.*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        return _build_bundle_locked(name, environment, lock, lock_hash, final, settings)


def _build_bundle_locked(name: str, environment: str, lock: LockFile, lock_hash: str, final: Path,
                         settings: Settings) -> BundleInfo:
    from agentforge.services.materialise import materialise

    if final.exists():
        problems = _verify_bundle(final, lock, lock_hash)
        if not problems:
            return BundleInfo(path=str(final), lock_hash=lock_hash, reused=True)
        # A damaged bundle is set aside (never edited in place: a process may still serve it).
        final.rename(final.with_name(f"{final.name}.damaged-{uuid.uuid4().hex[:8]}"))
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=str(final.parent)))
    try:
        components = staging / "components"
        components.mkdir()
        materialise(lock.packages, {k: components / p.component for k, p in lock.packages.items()},
                    settings=settings)
        (staging / "forge-lock.yaml").write_text(render_lock(lock), encoding="utf-8")
        (staging / BUNDLE_MANIFEST).write_text(json.dumps(
            {"composition": name, "environment": environment, "lock_hash": lock_hash,
             "content_hash": lock.content_hash}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        checkpoint("deploy.bundle")
        try:
            staging.rename(final)
        except OSError:
            if not final.exists():
                raise
            # Another deploy built the same bundle first: theirs is as good as ours.
            shutil.rmtree(staging, ignore_errors=True)
            return BundleInfo(path=str(final), lock_hash=lock_hash, reused=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BundleInfo(path=str(final), lock_hash=lock_hash, reused=False)


# --- configuration (pure) ---------------------------------------------------------------------


class MergedConfiguration(BaseModel):
    settings: dict[str, Any]
    specs: dict[str, dict[str, Any]]
    applied: dict[str, dict[str, Any]]  # per component: the override layers merged (what the instance changes)
    instance_sets: dict[str, Any]


def merge_configuration(doc: CompositionDocument, environment: str, *, definitions: Mapping[str, Mapping[str, Any]],
                        kinds: Mapping[str, str], local_overrides: Mapping[str, Any] | None,
                        sets: Sequence[str]) -> MergedConfiguration:
    """FORMATS §4: settings = configuration → environments.<env> → --set KEY=VALUE; each component's
    spec = its definition → overrides.<kinds>.<name> → local overrides → --set components.<name>.<path>=….

    ``definitions``: component name → its component.yaml mapping; ``kinds``: name → Tool/Prompt/Agent.
    Every problem (unknown component, bad path, missing environment) is a ConfigError naming it.
    """
    source = f"composition {doc.name}"
    if problem := environment_problem(doc, environment):
        raise ConfigError(problem, code="ENVIRONMENT_UNKNOWN",
                          hint="Deploy to a declared environment, or add it under spec.environments.")
    problems = check_override_targets(doc.spec.overrides.model_dump(), kinds, where=f"{source}: spec.overrides")
    problems += check_override_targets(local_overrides, kinds, where=f"{source}: local overrides")
    parsed = parse_set_arguments(sets)
    for key, _ in parsed:
        segments = parse_path(key)
        if segments[0][1] == "components":
            if len(segments) < 3:
                problems.append(f"--set {key}: expected components.<name>.<path>=VALUE")
            elif str(segments[1][1]) not in kinds:
                problems.append(f"--set {key}: no component {segments[1][1]!r} in the resolved composition "
                                f"(resolved: {', '.join(sorted(kinds))})")
    if problems:
        raise ConfigError("\n".join(problems), code="OVERRIDE_INVALID",
                          hint="`agentforge compose validate NAME` lists the resolved components.")

    base: dict[str, Any] = {"deployment": dict(doc.spec.deployment)} if doc.spec.deployment else {}
    settings = deep_merge(deep_merge(base, doc.spec.configuration), doc.spec.environments.get(environment) or {})
    layers: dict[str, dict[str, Any]] = {}
    for name, kind in kinds.items():
        group = GROUP_OF_KIND[kind]
        own = getattr(doc.spec.overrides, group).get(name) or {}
        local = ((local_overrides or {}).get(group) or {}).get(name) or {}
        layers[name] = deep_merge(own, local)
    tree: dict[str, Any] = {"components": {n: deep_merge(dict(definitions[n].get("spec") or {}), layers[n])
                                           for n in kinds}}
    applied = {"components": {n: dict(v) for n, v in layers.items() if v}}
    instance_sets: dict[str, Any] = {}
    for key, value in parsed:
        instance_sets[key] = value
        if parse_path(key)[0][1] == "components":
            _set_checked(tree, key, value)
            set_path(applied, key, value)
        else:
            _set_checked(settings, key, value)
    return MergedConfiguration(settings=settings, specs=tree["components"], applied=applied["components"],
                               instance_sets=instance_sets)


def _set_checked(tree: dict[str, Any], key: str, value: Any) -> None:
    try:
        set_path(tree, key, value)
    except ConfigError as exc:
        raise ConfigError(f"--set {key}: {exc.message}", code="OVERRIDE_PATH_INVALID", hint=exc.hint) from None


# --- preparing a deployment -------------------------------------------------------------------


def _startup_timeout(settings_doc: Mapping[str, Any]) -> float:
    value = get_path(settings_doc, "deployment.health_checks.readiness_probe.startup_timeout", None)
    return float(value) if isinstance(value, int | float) and value > 0 else DEFAULT_STARTUP_TIMEOUT


def _readiness_path(settings_doc: Mapping[str, Any]) -> str:
    value = get_path(settings_doc, "deployment.health_checks.readiness_probe.endpoint", None)
    return value if isinstance(value, str) and value.startswith("/") else "/health/ready"


def check_instance_name(instance: str) -> None:
    """An instance name becomes a folder name, a URL part and a line on the terminal."""
    from agentforge.core.documents import is_valid_name

    if not is_valid_name(instance):
        shown = instance[:60].encode("unicode_escape").decode("ascii")
        raise ConfigError(f"--instance {shown!r}: not a valid instance name (lower-case letters, digits, "
                          "'.', '_' and '-', starting with a letter or digit, at most 100)",
                          code="INSTANCE_NAME_INVALID", hint="For example --instance dev-2.")


def check_environment_name(environment: str) -> None:
    """An environment name becomes part of a bundle's folder name and of instance names."""
    from agentforge.core.documents import is_valid_name

    if not is_valid_name(environment):
        shown = environment[:60].encode("unicode_escape").decode("ascii")
        raise ConfigError(f"--env {shown!r}: not a valid environment name (lower-case letters, digits, "
                          "'.', '_' and '-', starting with a letter or digit, at most 100)",
                          code="ENVIRONMENT_NAME_INVALID",
                          hint="Use one of the composition's spec.environments, e.g. --env development.")


def instance_names(name: str, environment: str, instance: str | None, *,
                   settings: Settings | None = None) -> list[str]:
    """``--instance I`` → [I]; else ``deployment.instances`` names: ``<env>`` (one) or ``<env>-<n>``."""
    if instance is not None:
        check_instance_name(instance)
        return [instance]
    with session_scope(get_engine(settings)) as session:
        definition = comp_q.get_composition(name, session=session).definition
    count = (definition.get("spec") or {}).get("deployment", {}).get("instances", 1)
    count = count if isinstance(count, int) and count > 0 else 1
    return [environment] if count == 1 else [f"{environment}-{i}" for i in range(1, count + 1)]


def _instance_dir(settings: Settings, instance_id: uuid.UUID | str) -> Path:
    return settings.instances_dir / str(instance_id)


def _log_path(settings: Settings, instance_id: uuid.UUID | str) -> Path:
    return _instance_dir(settings, instance_id) / "instance.log"


def _current_resolved(settings: Settings, instance_id: uuid.UUID | str) -> Path:
    return _instance_dir(settings, instance_id) / "current.json"


def _write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def prepare_deployment(name: str, environment: str, instance_name: str, lock: LockFile, bundle: BundleInfo,
                       sets: Sequence[str] = (), *, settings: Settings | None = None) -> DeployPlan:
    """Merge the configuration, write the instance's resolved.json, record the intent in Postgres.

    Nothing is written when the merge fails (unknown component, bad path, missing environment).
    """
    from agentforge.services.materialise import locate_packages

    settings = settings or get_settings()
    components = components_of_lock(lock)
    sources = locate_packages(lock.packages, settings=settings)
    definitions: dict[str, Mapping[str, Any]] = {p.component: sources[k].definition for k, p in lock.packages.items()}
    from agentforge.services.settings import apply_llm_defaults, llm_defaults

    with session_scope(get_engine(settings)) as session:
        comp = comp_q.get_composition(name, session=session)
        definition, local, comp_id = comp.definition, comp.local_overrides, comp.id
        defaults = llm_defaults(session=session)
    doc = parse_composition(definition, source=f"composition {name}")
    merged = merge_configuration(doc, environment, definitions=definitions,
                                 kinds={n: c.kind for n, c in components.items()}, local_overrides=local, sets=sets)
    # An agent that names no LLM provider/model gets the user's defaults (config default_llm_*).
    merged.specs = {n: apply_llm_defaults(components[n].kind, spec, defaults) if n in components else spec
                    for n, spec in merged.specs.items()}
    roles = {d.component: d.role for d in doc.dependencies() if d.role}
    with session_scope(get_engine(settings)) as session:
        comp_q.lock_composition(comp_id, session=session)
        row = comp_q.ensure_instance(session=session, composition_id=comp_id, name=instance_name,
                                     environment=environment)
        previous = None
        if row.pid and supervisor.is_alive(row.pid, bundle_dir=Path(row.bundle_path) if row.bundle_path else None):
            previous = PreviousRun(pid=row.pid, port=row.port, url=row.url, lock_hash=row.lock_hash,
                                   bundle_path=row.bundle_path)
        instance_id, running = row.id, row.status == InstanceStatus.RUNNING
    resolved_doc = {
        "composition": {"name": doc.name, "version": doc.version, "environment": environment,
                        "lock_hash": bundle.lock_hash, "content_hash": lock.content_hash},
        "instance": {"id": str(instance_id), "name": instance_name},
        "settings": merged.settings,
        "components": {
            n: {"key": c.key, "kind": c.kind, "version": c.version, "commit": lock.packages[c.key].commit,
                "role": roles.get(n), "path": f"components/{n}",
                "metadata": definitions[n].get("metadata") or {}, "spec": merged.specs[n]}
            for n, c in sorted(components.items())},
    }
    common: dict[str, Any] = dict(composition=name, composition_id=str(comp_id), instance_id=str(instance_id),
                  instance_name=instance_name, environment=environment, lock_hash=bundle.lock_hash,
                  bundle_path=bundle.path, log_path=str(_log_path(settings, instance_id)),
                  readiness_path=_readiness_path(merged.settings), startup_timeout=_startup_timeout(merged.settings))
    current = _current_resolved(settings, instance_id)
    if (previous is not None and running and previous.lock_hash == bundle.lock_hash
            and previous.bundle_path == bundle.path and current.exists()
            and json.loads(current.read_text()) == resolved_doc):
        # Same lock, same configuration, healthy process: nothing to do (redeploys are idempotent).
        return DeployPlan(**common, deployment_id="", resolved_path=str(current), previous=previous, unchanged=True)
    with session_scope(get_engine(settings)) as session:
        comp_q.lock_composition(comp_id, session=session)
        row = comp_q.ensure_instance(session=session, composition_id=comp_id, name=instance_name,
                                     environment=environment)
        deployment_id = comp_q.add_deployment(session=session, composition_id=comp_id, instance_id=row.id,
                                              environment=environment, lock_hash=bundle.lock_hash,
                                              lock_file=lock.model_dump(mode="json"), bundle_path=bundle.path)
        row.status = InstanceStatus.UPDATING if previous else InstanceStatus.STARTING
        comp_q.fail_unfinished_deployments(row.id, session=session, keep=deployment_id,
                                           error="interrupted: the deploying process died before it finished")
        row.environment = environment
        row.error_message = None
        if previous is None:
            row.pid = None
    checkpoint("deploy.intent")
    resolved_path = _instance_dir(settings, instance_id) / str(deployment_id) / "resolved.json"
    _write_json(resolved_path, resolved_doc)
    with session_scope(get_engine(settings)) as session:
        # ${ENV} references stay unresolved here: the process resolves them from its environment.
        comp_q.update_instance(instance_id, session=session, config=merged.settings,
                               overrides={"components": merged.applied, "set": merged.instance_sets})
    return DeployPlan(**common, deployment_id=str(deployment_id), resolved_path=str(resolved_path),
                      previous=previous)


# --- starting and switching -------------------------------------------------------------------


def _runtime_env(settings: Settings) -> dict[str, str]:
    # libpq wants postgresql://, not SQLAlchemy's postgresql+psycopg://; passed in the
    # environment, never on the command line (ps shows arguments).
    url = database_url(settings).set(drivername="postgresql").render_as_string(hide_password=False)
    return {"AGENTFORGE_DATABASE_URL": url}


def _port_free(port: int | None) -> bool:
    if not port:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_candidate(plan: DeployPlan, *, settings: Settings | None = None) -> StartOutcome:
    """Start the planned process (a new port while the previous one serves) and wait for readiness."""
    settings = settings or get_settings()
    if plan.unchanged and plan.previous is not None:
        prev = plan.previous
        return StartOutcome(ready=True, pid=prev.pid, port=prev.port or 0, url=prev.url or "")
    for stray in supervisor.instance_pids(plan.instance_id):
        if plan.previous is None or stray != plan.previous.pid:
            supervisor.stop_instance(stray)  # left by a deploy killed before its switch or its stop
    port = plan.reuse_port if plan.previous is None and _port_free(plan.reuse_port) else None
    for attempt in range(3):
        process = supervisor.start_instance(Path(plan.bundle_path), port=port, instance_id=plan.instance_id,
                                            log_path=Path(plan.log_path), env=_runtime_env(settings),
                                            resolved_path=Path(plan.resolved_path))
        checkpoint("deploy.spawned")
        ready = supervisor.wait_ready(process.url, path=plan.readiness_path, timeout=plan.startup_timeout,
                                      pid=process.pid, instance_id=plan.instance_id)
        # A port found free (picked, or the instance's previous one) can be taken before the child
        # binds it: the child exits; try again on a newly picked port.
        if ready or supervisor.is_alive(process.pid) or attempt == 2 or \
                "address already in use" not in supervisor.tail_log(Path(plan.log_path), 20).lower():
            break
        port = None
    tail = "" if ready else supervisor.tail_log(Path(plan.log_path), 20)
    return StartOutcome(ready=ready, pid=process.pid, port=process.port, url=process.url, log_tail=tail)


def complete_deployment(plan: DeployPlan, outcome: StartOutcome, *, settings: Settings | None = None
                        ) -> InstanceResult:
    """Ready: switch the row to the new process, then stop the old one. Not ready: stop the candidate,
    mark the attempt FAILED and keep (or report the absence of) the previous process."""
    settings = settings or get_settings()
    base: dict[str, Any] = dict(composition=plan.composition, instance=plan.instance_name,
                                instance_id=plan.instance_id, environment=plan.environment)
    if plan.unchanged:
        return InstanceResult(**base, status=InstanceStatus.RUNNING.value, url=outcome.url, lock_hash=plan.lock_hash,
                              ok=True, message=f"already running this lock and configuration at {outcome.url}")
    instance_id, deployment_id = uuid.UUID(plan.instance_id), uuid.UUID(plan.deployment_id)
    if outcome.ready:
        with session_scope(get_engine(settings)) as session:
            comp_q.lock_composition(uuid.UUID(plan.composition_id), session=session)
            comp_q.update_instance(instance_id, session=session, status=InstanceStatus.RUNNING, pid=outcome.pid,
                                   port=outcome.port, url=outcome.url, lock_hash=plan.lock_hash,
                                   bundle_path=plan.bundle_path, last_started=comp_q.now(), error_message=None)
            comp_q.finish_deployment(deployment_id, DeploymentStatus.HEALTHY, session=session)
            comp_q.mark_deployed(uuid.UUID(plan.composition_id), plan.environment, session=session)
        checkpoint("deploy.switched")
        _write_json(_current_resolved(settings, instance_id), json.loads(Path(plan.resolved_path).read_text()))
        if plan.previous is not None and plan.previous.pid != outcome.pid:
            supervisor.stop_instance(plan.previous.pid)
        return InstanceResult(**base, status=InstanceStatus.RUNNING.value, url=outcome.url,
                              lock_hash=plan.lock_hash, ok=True, message=f"running at {outcome.url}")
    supervisor.stop_instance(outcome.pid)
    reason = f"not ready on {plan.readiness_path} within {plan.startup_timeout:g}s or exited"
    if outcome.log_tail:
        reason += "; log tail:\n" + outcome.log_tail
    with session_scope(get_engine(settings)) as session:
        comp_q.finish_deployment(deployment_id, DeploymentStatus.FAILED, session=session, error_message=reason)
        prev = plan.previous
        if prev is not None and supervisor.is_alive(prev.pid):
            comp_q.update_instance(instance_id, session=session, status=InstanceStatus.RUNNING,
                                   error_message=f"deploy of lock {short(plan.lock_hash)} failed readiness; "
                                                 f"rolled back to {short(prev.lock_hash)}")
            message = (f"the new lock {short(plan.lock_hash)} failed readiness; rolled back: lock "
                       f"{short(prev.lock_hash)} keeps serving at {prev.url}")
            return InstanceResult(**base, status=InstanceStatus.RUNNING.value, url=prev.url,
                                  lock_hash=prev.lock_hash, ok=False, rolled_back=True, message=message)
        # Nothing to fall back to: record what was tried, so `instance start` can retry it.
        comp_q.update_instance(instance_id, session=session, status=InstanceStatus.ERROR, pid=None,
                               lock_hash=plan.lock_hash, bundle_path=plan.bundle_path, error_message=reason)
        comp_q.refresh_deployed_flag(uuid.UUID(plan.composition_id), session=session)
    _write_json(_current_resolved(settings, instance_id), json.loads(Path(plan.resolved_path).read_text()))
    return InstanceResult(**base, status=InstanceStatus.ERROR.value, url=None, lock_hash=plan.lock_hash, ok=False,
                          message=f"the instance failed readiness (no previous instance to fall back to): {reason}")


def raise_for_failures(results: Sequence[InstanceResult]) -> None:
    failed = [r for r in results if not r.ok]
    if failed:
        raise ReadinessFailed("\n".join(f"{r.composition}/{r.instance}: {r.message}" for r in failed),
                              hint="`agentforge instance logs ID` shows why; fix and deploy again.",
                              details={"results": [r.model_dump() for r in results]})


# --- rollback and holds -----------------------------------------------------------------------


class RollbackPlan(BaseModel):
    lock: LockFile
    bad_lock_hash: str | None
    good_lock_hash: str


def plan_rollback(name: str, environment: str, *, settings: Settings | None = None) -> RollbackPlan:
    """The last healthy lock other than the current one; the current (bad) one goes on hold."""
    with session_scope(get_engine(settings)) as session:
        comp = comp_q.get_composition(name, session=session)
        if problem := environment_problem(parse_composition(comp.definition, source=f"composition {name}"),
                                          environment):
            raise ConfigError(problem, code="ENVIRONMENT_UNKNOWN", hint="Roll back in a declared environment.")
        current = {i.lock_hash for i, _ in comp_q.list_instances(session=session, composition=name,
                                                                   environment=environment) if i.lock_hash}
        stored = LockFile.model_validate(comp.lock_file) if comp.lock_file else None
        bad = sorted(current) or ([lock_hash_of(stored)] if stored else [])
        good = comp_q.last_good_deployment(comp.id, environment, session=session, excluding=bad)
        if good is None:
            raise NotFound(f"composition {name}: no earlier healthy deploy in {environment} to return to",
                           code="NO_ROLLBACK_TARGET", hint="`agentforge compose instances` shows what runs.")
        for lock_hash in bad:
            comp_q.hold_lock(session=session, composition_id=comp.id, environment=environment,
                             lock_hash=lock_hash, reason=f"rolled back to {short(good.lock_hash)}")
        comp_q.mark_rolled_back(comp.id, environment, bad, session=session)
        return RollbackPlan(lock=LockFile.model_validate(good.lock_file), bad_lock_hash=bad[0] if bad else None,
                            good_lock_hash=good.lock_hash)


def release_hold(name: str, environment: str, lock_hash: str | None = None, *,
                 settings: Settings | None = None) -> list[str]:
    if lock_hash and not lock_hash.startswith("sha256:"):
        lock_hash = "sha256:" + lock_hash
    with session_scope(get_engine(settings)) as session:
        comp = comp_q.get_composition(name, session=session)
        lifted = comp_q.release_holds(session=session, composition_id=comp.id, environment=environment,
                                      lock_hash=lock_hash)
    if not lifted:
        raise NotFound(f"composition {name}: no lock on hold in {environment}"
                       + (f" matching {lock_hash}" if lock_hash else ""), code="NO_HOLD")
    return lifted


# --- lifecycle --------------------------------------------------------------------------------

_LIVE_STATES = (InstanceStatus.RUNNING, InstanceStatus.UPDATING, InstanceStatus.STARTING, InstanceStatus.STOPPING)


def _reconcile(row: CompositionInstance) -> bool:
    """A row that claims a process which is gone becomes ERROR; True when it changed."""
    if row.status in _LIVE_STATES and row.pid is not None and not supervisor.is_alive(
            row.pid, bundle_dir=Path(row.bundle_path) if row.bundle_path else None):
        row.error_message = f"process {row.pid} is no longer running (found by reconcile)"
        row.status = InstanceStatus.ERROR
        row.pid = None
        return True
    return False


def instance_view(row: CompositionInstance, composition: str) -> dict[str, Any]:
    return {"id": str(row.id), "composition": composition, "name": row.name, "ref": f"{composition}/{row.name}",
            "environment": row.environment, "status": row.status.value, "url": row.url, "port": row.port,
            "pid": row.pid, "lock_hash": row.lock_hash, "last_started": row.last_started,
            "last_stopped": row.last_stopped, "request_count": row.request_count, "error_count": row.error_count,
            "avg_response_time": row.avg_response_time, "error_message": row.error_message}


def list_instances(composition: str | None = None, *, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Instances with their status reconciled against the processes actually running."""
    with session_scope(get_engine(settings)) as session:
        if composition is not None:
            comp_q.get_composition(composition, session=session)
        out = []
        for row, comp_name in comp_q.list_instances(session=session, composition=composition):
            if _reconcile(row):
                comp_q.refresh_deployed_flag(row.composition_id, session=session)
            out.append(instance_view(row, comp_name))
        return out


def instance_health(ref: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Reconciled status plus what the process says on its liveness and readiness endpoints."""
    with session_scope(get_engine(settings)) as session:
        row = comp_q.get_instance(ref, session=session, for_update=True)
        _reconcile(row)
        view = instance_view(row, row.composition.name)
    probes: dict[str, Any] = {}
    if view["url"] and view["status"] in ("RUNNING", "UPDATING"):
        with httpx.Client(timeout=3.0) as client:
            for probe in ("/health/live", "/health/ready"):
                try:
                    probes[probe] = client.get(view["url"] + probe).status_code
                except httpx.HTTPError as exc:
                    probes[probe] = f"unreachable: {type(exc).__name__}"
    view["probes"] = probes
    view["healthy"] = view["status"] == "RUNNING" and probes.get("/health/ready") == 200
    return view


def instance_logs(ref: str, lines: int = 50, *, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        row = comp_q.get_instance(ref, session=session)
        instance_id = row.id
    return supervisor.tail_log(_log_path(settings, instance_id), lines)


def stop(ref: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """STOPPING → (SIGTERM; the server flushes its metrics) → STOPPED with last_stopped."""
    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        row = comp_q.get_instance(ref, session=session, for_update=True)
        pid, instance_id = row.pid, row.id
        row.status = InstanceStatus.STOPPING
    if pid is not None:
        supervisor.stop_instance(pid)
    with session_scope(get_engine(settings)) as session:
        row = comp_q.get_instance(str(instance_id), session=session, for_update=True)
        row.status, row.pid, row.last_stopped = InstanceStatus.STOPPED, None, comp_q.now()
        comp_q.refresh_deployed_flag(row.composition_id, session=session)
        return instance_view(row, row.composition.name)


def start(ref: str, *, settings: Settings | None = None) -> InstanceResult:
    """Start a stopped (or failed) instance from its recorded bundle and configuration."""
    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        row = comp_q.get_instance(ref, session=session, for_update=True)
        _reconcile(row)
        comp_name = row.composition.name
        if row.status in (InstanceStatus.RUNNING, InstanceStatus.UPDATING) and row.pid:
            return InstanceResult(composition=comp_name, instance=row.name, instance_id=str(row.id),
                                  environment=row.environment or "", status=row.status.value, url=row.url,
                                  lock_hash=row.lock_hash, ok=True, message=f"already running at {row.url}")
        resolved = _current_resolved(settings, row.id)
        if not row.bundle_path or not Path(row.bundle_path).is_dir() or not resolved.is_file():
            raise DeployError(f"instance {comp_name}/{row.name} has no deployed bundle to start",
                              code="NOT_DEPLOYED", hint=f"Run `agentforge compose deploy {comp_name} --env ENV`.")
        document = json.loads(resolved.read_text(encoding="utf-8"))
        deployment_id = comp_q.add_deployment(
            session=session, composition_id=row.composition_id, instance_id=row.id,
            environment=row.environment or "", lock_hash=row.lock_hash or "",
            lock_file=_bundle_lock(row.bundle_path),
            bundle_path=row.bundle_path)
        row.status = InstanceStatus.STARTING
        plan = DeployPlan(composition=comp_name, composition_id=str(row.composition_id), instance_id=str(row.id),
                          instance_name=row.name, environment=row.environment or "",
                          deployment_id=str(deployment_id), lock_hash=row.lock_hash or "",
                          bundle_path=row.bundle_path, resolved_path=str(resolved),
                          log_path=str(_log_path(settings, row.id)),
                          readiness_path=_readiness_path(document.get("settings") or {}),
                          startup_timeout=_startup_timeout(document.get("settings") or {}), reuse_port=row.port)
    return complete_deployment(plan, start_candidate(plan, settings=settings), settings=settings)


def _bundle_lock(bundle_path: str) -> dict[str, Any]:
    from agentforge.core.lockfile import parse_lock

    lock = parse_lock((Path(bundle_path) / "forge-lock.yaml").read_bytes(), source=f"{bundle_path}/forge-lock.yaml")
    return lock.model_dump(mode="json")


def restart(ref: str, *, settings: Settings | None = None) -> InstanceResult:
    stop(ref, settings=settings)
    return start(ref, settings=settings)


__all__ = [
    "AgentForgeError", "BundleInfo", "DeployPlan", "InstanceResult", "ReadinessFailed", "RollbackPlan",
    "StartOutcome", "build_bundle", "check_not_held", "complete_deployment", "frozen_lock", "instance_health",
    "instance_logs", "instance_names", "list_instances", "lock_composition", "lock_hash_of", "merge_configuration",
    "plan_rollback", "prepare_deployment", "raise_for_failures", "release_hold", "restart", "start",
    "start_candidate", "stop",
]
