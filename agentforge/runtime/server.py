"""The HTTP process of one deployed composition instance (ASGI app + ``main()``).

Run as ``python -m agentforge.runtime.server --bundle DIR --host 127.0.0.1 --port P
[--instance-id UUID] [--resolved FILE]``. The bundle directory holds the components' files
under ``components/<name>/`` and, unless ``--resolved`` names another file, ``resolved.json``
(written by the deploy flow). The deploy flow keeps bundles immutable and shared by every
instance of one (composition, lock, environment), so it writes each instance's
``resolved.json`` outside the bundle and passes ``--resolved``.

Start-up order matters: the bundle is loaded and every ``${ENV}`` reference resolved
*before* the server binds, so a missing variable makes the process exit non-zero with a
clear message instead of ever reporting ready. Resolved values live only in memory: they
are never written back to disk and ``GET /v1/composition`` shows them masked.

Metrics (request count, 5xx errors, 4xx separately, average response time) are counted in
memory and flushed in batches (every ``flush_interval`` seconds and at shutdown) through a
:class:`MetricsSink`, so a busy instance costs the database one ``UPDATE`` per interval,
not one per request. Health probes are not counted: a supervisor polling readiness would
otherwise drown the real traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentforge.core.prompts import TemplateVariableError, render_template
from agentforge.errors import AgentForgeError, ConfigError, NotFound, redact

__all__ = [
    "DATABASE_URL_ENV",
    "AgentRuntime",
    "JsonLinesMetricsSink",
    "LoadedComposition",
    "LogMetricsSink",
    "MetricsBatch",
    "MetricsSink",
    "PostgresMetricsSink",
    "PromptTemplate",
    "RequestMetrics",
    "create_app",
    "load_bundle",
    "main",
    "mask_env_refs",
    "resolve_env_refs",
]

DATABASE_URL_ENV = "AGENTFORGE_DATABASE_URL"
DEFAULT_READINESS_PATH = "/health/ready"
DEFAULT_LIVENESS_PATH = "/health/live"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
MAX_TEMPLATE_BYTES = 1024 * 1024
MASK = "***"

logger = logging.getLogger("agentforge.runtime")
access_logger = logging.getLogger("agentforge.runtime.access")

# ${NAME} or ${NAME:-default}; the default may be empty and may not contain `}`.
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Keys whose literal values are secrets even without an ${ENV} reference (but `api_key_env`
# holds only a variable *name*, so it stays visible).
_SECRET_KEY = re.compile(r"(?i)(^|[_-])(api[_-]?key|token|secret|password|passwd|credentials?)$")


# --------------------------------------------------------------------------------------
# ${ENV} references
# --------------------------------------------------------------------------------------


def _resolve_refs(value: Any, environ: Mapping[str, str], where: str, missing: list[str]) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            missing.append(f"{name} (referenced at {where})")
            return match.group(0)

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, Mapping):
        return {key: _resolve_refs(item, environ, f"{where}.{key}", missing) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve_refs(item, environ, f"{where}[{i}]", missing) for i, item in enumerate(value)]
    return value


def _missing_env_error(missing: Sequence[str]) -> ConfigError:
    return ConfigError(
        "environment variable(s) not set: " + "; ".join(missing),
        code="ENV_VAR_MISSING",
        hint="Export them before starting the instance, or give a default as ${NAME:-default}.",
    )


def resolve_env_refs(value: Any, environ: Mapping[str, str], *, where: str = "settings") -> Any:
    """Return a copy of ``value`` with every ``${NAME}`` / ``${NAME:-default}`` substituted.

    All missing variables are reported at once (one restart fixes them all).
    """
    missing: list[str] = []
    resolved = _resolve_refs(value, environ, where, missing)
    if missing:
        raise _missing_env_error(missing)
    return resolved


def mask_env_refs(value: Any) -> Any:
    """The display form of settings/specs: each ``${...}`` reference and each secret-named key → ``***``."""
    if isinstance(value, str):
        return _ENV_REF.sub(MASK, value)
    if isinstance(value, Mapping):
        return {
            key: MASK if isinstance(item, str) and _SECRET_KEY.search(str(key)) else mask_env_refs(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_env_refs(item) for item in value]
    return value


# --------------------------------------------------------------------------------------
# The bundle
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt ready to render: its text (inline or read from its file) and variables."""

    name: str
    text: str
    variables: tuple[Mapping[str, Any], ...]
    role: str  # "system" | "user" | "assistant": the chat role of its message


@dataclass(frozen=True)
class AgentRuntime:
    """An agent ready to invoke: its effective LLM settings and the prompts it uses, in order."""

    name: str
    llm: Mapping[str, Any] = field(repr=False)  # may hold resolved ${ENV} values
    prompts: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedComposition:
    """Everything the server needs, resolved once at start."""

    bundle_dir: Path
    composition: Mapping[str, Any]
    instance: Mapping[str, Any]
    # ${ENV} resolved: never served or logged, hence out of repr (like the agents' LLM settings).
    settings: Mapping[str, Any] = field(repr=False)
    display_settings: Mapping[str, Any]  # masked: what /v1/composition shows
    display_components: Mapping[str, Any]
    prompts: Mapping[str, PromptTemplate]
    agents: Mapping[str, AgentRuntime] = field(repr=False)
    readiness_path: str = DEFAULT_READINESS_PATH
    liveness_path: str = DEFAULT_LIVENESS_PATH
    warnings: tuple[str, ...] = ()
    # The environment the API keys are read from; excluded from repr so it never hits a log.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)


def _bundle_error(message: str, hint: str | None = None) -> ConfigError:
    return ConfigError(message, code="BUNDLE_INVALID", hint=hint)


def _inside(base: Path, relative: str, what: str) -> Path:
    """Resolve ``relative`` under ``base``, refusing anything that leaves it (``..``, absolute, symlink)."""
    if Path(relative).is_absolute():
        raise _bundle_error(f"{what}: path {relative!r} must be relative")
    candidate = (base / relative).resolve()
    if not candidate.is_relative_to(base.resolve()):
        raise _bundle_error(f"{what}: path {relative!r} leaves {base}")
    return candidate


def _dependency_name(entry: Any) -> str | None:
    """The component name of a dependency entry: ``component``/``name``, or parsed from a forge:// source."""
    if isinstance(entry, str):
        source = entry
    elif isinstance(entry, Mapping):
        for key in ("component", "name"):
            if isinstance(entry.get(key), str) and entry[key]:
                return str(entry[key])
        source = str(entry.get("source") or "")
    else:
        return None
    if source.startswith("forge://"):
        source = source[len("forge://") :]
        # forge://<namespace>/<component>:<version>; the namespace may itself be owner/repo.
        source = source.rsplit("/", 1)[-1].split(":", 1)[0]
    return source or None


def _prompt_role(component: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    role = component.get("role")
    if role in ("system", "user", "assistant"):
        return str(role)
    return "system" if spec.get("type") == "system" else "user"


def _load_prompt(bundle_dir: Path, name: str, component: Mapping[str, Any], spec: Mapping[str, Any]) -> PromptTemplate:
    what = f"prompt {name!r}"
    if isinstance(spec.get("template"), str):
        text = spec["template"]
    elif isinstance(spec.get("template_file"), str):
        folder = _inside(bundle_dir, str(component.get("path") or f"components/{name}"), what)
        path = _inside(folder, spec["template_file"], f"{what} spec.template_file")
        if not path.is_file():
            raise _bundle_error(f"{what}: template file {spec['template_file']!r} not found in {folder}")
        if path.stat().st_size > MAX_TEMPLATE_BYTES:
            raise _bundle_error(f"{what}: template file {path} is larger than 1 MiB")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise _bundle_error(f"{what}: template file {path} is not UTF-8") from exc
    else:
        raise _bundle_error(
            f"{what}: spec has neither `template` nor `template_file`",
            hint="Give the prompt text inline (spec.template) or as a file in its folder.",
        )
    variables = spec.get("variables") or []
    if not isinstance(variables, list):
        raise _bundle_error(f"{what}: spec.variables must be a list")
    return PromptTemplate(name=name, text=text, variables=tuple(variables), role=_prompt_role(component, spec))


def _agent_prompt_names(spec: Mapping[str, Any]) -> list[str]:
    dependencies = spec.get("dependencies") if isinstance(spec.get("dependencies"), Mapping) else {}
    entries = list((dependencies or {}).get("prompts") or []) + list(spec.get("prompts") or [])
    names: list[str] = []
    for entry in entries:
        name = _dependency_name(entry)
        if name and name not in names:
            names.append(name)
    return names


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def _probe_path(configured: Any, default: str) -> str:
    return configured if isinstance(configured, str) and configured.startswith("/") else default


def load_bundle(bundle_dir: Path, environ: Mapping[str, str], *, resolved_path: Path | None = None
                ) -> LoadedComposition:
    """Read ``resolved.json`` (or ``resolved_path``), resolve ``${ENV}`` references and load every prompt's template."""
    resolved_path = resolved_path or bundle_dir / "resolved.json"
    try:
        document = json.loads(resolved_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise _bundle_error(f"{resolved_path} not found", hint="Deploy the composition again.") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bundle_error(f"{resolved_path} is not valid JSON: {exc}") from exc
    if not isinstance(document, Mapping):
        raise _bundle_error(f"{resolved_path}: top level must be an object")

    raw_settings = document.get("settings") or {}
    raw_components = document.get("components") or {}
    if not isinstance(raw_settings, Mapping) or not isinstance(raw_components, Mapping):
        raise _bundle_error(f"{resolved_path}: `settings` and `components` must be objects")

    # Prompt text is content, not configuration: a `${HOME}` in a shell-tutorial prompt must
    # neither be expanded from the server's environment nor block the start.
    def env_scope(component: Mapping[str, Any]) -> dict[str, Any]:
        spec = dict(component.get("spec") or {})
        if component.get("kind") == "Prompt":
            spec.pop("template", None)
        return spec

    missing: list[str] = []
    settings = _resolve_refs(raw_settings, environ, "settings", missing)
    specs: dict[str, dict[str, Any]] = {}
    for name, component in raw_components.items():
        if not isinstance(component, Mapping):
            raise _bundle_error(f"{resolved_path}: components.{name} must be an object")
        spec = _resolve_refs(env_scope(component), environ, f"components.{name}.spec", missing)
        if component.get("kind") == "Prompt" and "template" in (component.get("spec") or {}):
            spec["template"] = component["spec"]["template"]
        specs[name] = spec
    if missing:
        raise _missing_env_error(missing)

    prompts: dict[str, PromptTemplate] = {}
    agents: dict[str, AgentRuntime] = {}
    warnings: list[str] = []
    settings_llm = settings.get("llm") if isinstance(settings.get("llm"), Mapping) else {}
    for name, component in raw_components.items():
        kind = component.get("kind")
        spec = specs[name]
        if kind == "Prompt":
            prompts[name] = _load_prompt(bundle_dir, name, component, spec)
    for name, component in raw_components.items():
        if component.get("kind") != "Agent":
            continue
        spec = specs[name]
        # Component-specific LLM settings win over the composition-wide ones.
        llm = {**(settings_llm or {}), **(spec.get("llm") or {})}
        used: list[str] = []
        for prompt_name in _agent_prompt_names(spec):
            if prompt_name in prompts:
                used.append(prompt_name)
            else:
                warnings.append(f"agent {name!r}: prompt {prompt_name!r} is not in the resolved composition")
        agents[name] = AgentRuntime(name=name, llm=llm, prompts=tuple(used))

    display_components = {
        name: {
            "key": component.get("key"),
            "kind": component.get("kind"),
            "version": component.get("version"),
            "commit": component.get("commit"),
            "role": component.get("role"),
            "metadata": mask_env_refs(component.get("metadata") or {}),
            "spec": mask_env_refs(component.get("spec") or {}),
        }
        for name, component in raw_components.items()
    }
    readiness = _get(settings, "deployment", "health_checks", "readiness_probe", "endpoint")
    liveness = _get(settings, "deployment", "health_checks", "liveness_probe", "endpoint")
    return LoadedComposition(
        bundle_dir=bundle_dir,
        composition=dict(document.get("composition") or {}),
        instance=dict(document.get("instance") or {}),
        settings=settings,
        display_settings=mask_env_refs(raw_settings),
        display_components=display_components,
        prompts=prompts,
        agents=agents,
        readiness_path=_probe_path(readiness, DEFAULT_READINESS_PATH),
        liveness_path=_probe_path(liveness, DEFAULT_LIVENESS_PATH),
        warnings=tuple(warnings),
        environ=dict(environ),
    )


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricsBatch:
    """What happened since the previous flush."""

    request_count: int = 0
    error_count: int = 0  # responses with status >= 500
    client_error_count: int = 0  # 4xx, kept apart: a caller's mistake is not an outage
    total_ms: float = 0.0

    @property
    def avg_ms(self) -> float:
        return self.total_ms / self.request_count if self.request_count else 0.0

    def __add__(self, other: MetricsBatch) -> MetricsBatch:
        return MetricsBatch(
            self.request_count + other.request_count,
            self.error_count + other.error_count,
            self.client_error_count + other.client_error_count,
            self.total_ms + other.total_ms,
        )


class MetricsSink(Protocol):
    """Where batches go. ``flush`` may raise: the batch is then kept and retried next time."""

    def flush(self, batch: MetricsBatch) -> None: ...

    def close(self) -> None: ...


class RequestMetrics:
    """Thread-safe counters: the pending batch plus lifetime totals (served by ``/v1/metrics``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = MetricsBatch()
        self._total = MetricsBatch()

    def record(self, status: int, elapsed_ms: float) -> None:
        one = MetricsBatch(1, int(status >= 500), int(400 <= status < 500), elapsed_ms)
        with self._lock:
            self._pending = self._pending + one
            self._total = self._total + one

    def take_batch(self) -> MetricsBatch:
        with self._lock:
            batch, self._pending = self._pending, MetricsBatch()
        return batch

    def restore(self, batch: MetricsBatch) -> None:
        """Put back a batch whose flush failed, so no request is lost."""
        with self._lock:
            self._pending = batch + self._pending

    @property
    def totals(self) -> MetricsBatch:
        with self._lock:
            return self._total


class LogMetricsSink:
    """Fallback when no database is configured: one log line per non-empty batch."""

    def flush(self, batch: MetricsBatch) -> None:
        logger.info(
            "metrics: requests=%d errors=%d client_errors=%d avg_ms=%.2f",
            batch.request_count,
            batch.error_count,
            batch.client_error_count,
            batch.avg_ms,
        )

    def close(self) -> None:
        return None


class JsonLinesMetricsSink:
    """Appends each batch as one JSON line to a file (local runs without a database)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def flush(self, batch: MetricsBatch) -> None:
        line = json.dumps(
            {
                "request_count": batch.request_count,
                "error_count": batch.error_count,
                "client_error_count": batch.client_error_count,
                "avg_response_time": batch.avg_ms,
            }
        )
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def close(self) -> None:
        return None


class PostgresMetricsSink:
    """Adds each batch to the instance's ``composition_instances`` row in ONE statement.

    The average is combined by weight in SQL (old average × old count + batch total) / new
    count, so concurrent writers and restarts never need a read-modify-write round trip.
    ``avg_response_time`` is in milliseconds. The connection is opened lazily, kept in
    autocommit mode, and reopened after a failure.
    """

    _SQL = """
        UPDATE composition_instances
        SET request_count = request_count + %(count)s::bigint,
            error_count = error_count + %(errors)s::bigint,
            avg_response_time = CASE
                WHEN request_count + %(count)s::bigint > 0 THEN
                    (COALESCE(avg_response_time, 0) * request_count + %(total_ms)s::double precision)
                    / (request_count + %(count)s::bigint)
                ELSE avg_response_time
            END{touch}
        WHERE id = %(id)s::uuid
    """

    def __init__(self, database_url: str, instance_id: str, *, connect_timeout: int = 5) -> None:
        self._url = database_url
        self.instance_id = str(uuid.UUID(instance_id))
        self._connect_timeout = connect_timeout
        self._conn: Any = None
        # The seed schema has no updated_at on composition_instances; the contract asks for
        # it. Try with it and drop it for good if the column turns out not to exist.
        self._touch_updated_at = True
        self._warned_missing_row = False

    def _secret(self) -> str | None:
        with contextlib.suppress(Exception):
            import psycopg.conninfo

            return psycopg.conninfo.conninfo_to_dict(self._url).get("password")  # type: ignore[return-value]
        return None

    def _connection(self) -> Any:
        import psycopg  # imported here: the server must start (and tests run) without a DB driver loaded

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                application_name="agentforge-runtime",
            )
        return self._conn

    def flush(self, batch: MetricsBatch) -> None:
        if batch.request_count == 0:
            return
        import psycopg

        params = {
            "count": batch.request_count,
            "errors": batch.error_count,
            "total_ms": batch.total_ms,
            "id": self.instance_id,
        }
        try:
            for _attempt in range(2):
                touch = ",\n            updated_at = now()" if self._touch_updated_at else ""
                try:
                    cursor = self._connection().execute(self._SQL.format(touch=touch), params)
                except psycopg.errors.UndefinedColumn:
                    if not self._touch_updated_at:
                        raise
                    self._touch_updated_at = False
                    continue
                if cursor.rowcount == 0 and not self._warned_missing_row:
                    self._warned_missing_row = True
                    logger.warning("metrics: no composition_instances row with id %s", self.instance_id)
                return
        except psycopg.Error as exc:
            self.close()
            raise ConfigError(
                "metrics flush to PostgreSQL failed: " + redact(str(exc).strip(), self._secret()),
                code="METRICS_FLUSH_FAILED",
                retryable=True,
            ) from None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


# --------------------------------------------------------------------------------------
# LLM providers
# --------------------------------------------------------------------------------------


class UpstreamError(AgentForgeError):
    """The agent's LLM provider failed; served as 502."""

    code = "LLM_UPSTREAM_FAILED"
    retryable = True


async def _call_openai_compatible(
    llm: Mapping[str, Any],
    messages: Sequence[Mapping[str, str]],
    *,
    settings: Mapping[str, Any],
    environ: Mapping[str, str],
) -> str:
    provider = str(llm.get("provider") or "openai")
    base_url = str(llm.get("base_url") or _get(settings, "llm", "base_url") or DEFAULT_OPENAI_BASE_URL)
    key_env = str(llm.get("api_key_env") or "OPENAI_API_KEY")
    api_key = environ.get(key_env)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    payload: dict[str, Any] = {"model": llm.get("model"), "messages": list(messages)}
    for option in ("temperature", "max_tokens", "top_p"):
        if llm.get(option) is not None:
            payload[option] = llm[option]
    timeout = llm.get("timeout") or _get(settings, "runtime", "timeout") or 60
    where = f"LLM provider {provider!r} at {redact(base_url)}"

    def fail(detail: str) -> UpstreamError:
        return UpstreamError(
            redact(f"{where} {detail}", api_key),
            hint=f"Check the provider's URL, model and the key in ${key_env}.",
        )

    if not api_key and base_url.rstrip("/") == DEFAULT_OPENAI_BASE_URL:
        # The public default without a key can only answer 401: no request leaves the machine
        # (an adapted catalog agent names a model but no provider, say).
        raise UpstreamError(
            f"{where}: no API key (${key_env} is not set in the instance's environment); no request was sent",
            code="LLM_NOT_CONFIGURED", retryable=False,
            hint=f"Set ${key_env}, point llm.base_url at your provider (spec.llm or the composition's "
                 "configuration), or use provider echo.",
        )

    try:
        async with httpx.AsyncClient(timeout=float(timeout)) as client:
            url = f"{base_url.rstrip('/')}/chat/completions"
            response = await client.post(url, json=payload, headers=headers)
    except httpx.HTTPError as exc:
        raise fail(f"could not be reached ({type(exc).__name__})") from None
    if response.status_code >= 400:
        detail = ""
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            upstream = response.json().get("error")
            detail = str(upstream.get("message") if isinstance(upstream, Mapping) else upstream or "")[:300]
        raise fail(f"answered HTTP {response.status_code}" + (f": {detail}" if detail else ""))
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise fail("sent a response that is not a chat completion") from None
    if not isinstance(content, str):
        raise fail("sent a chat completion without text content")
    return content


# --------------------------------------------------------------------------------------
# The ASGI app
# --------------------------------------------------------------------------------------


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update({key: value for key, value in extra.items() if value is not None})
    return JSONResponse({"error": body}, status_code=status)


def _from_exception(status: int, exc: AgentForgeError) -> JSONResponse:
    variable = exc.variable if isinstance(exc, TemplateVariableError) else None
    return _error(status, exc.code, exc.message, variable=variable, hint=exc.hint)


class _RequestError(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


#: Largest request body an instance reads (a prompt's variables, an agent's input): 1 MiB.
MAX_REQUEST_BYTES = 1 << 20


class BodyTooLarge(Exception):
    """A request body over the limit (``read_limited``)."""


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes whatever Content-Length claimed (and at once
    when it claims more): the instance API and the webhook receiver both read bodies so."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _json_body(request: Request) -> Mapping[str, Any]:
    """The JSON object a request carries, read at most :data:`MAX_REQUEST_BYTES` (413 beyond)."""
    try:
        raw = await read_limited(request, MAX_REQUEST_BYTES)
    except BodyTooLarge:
        raise _RequestError(_error(413, "REQUEST_TOO_LARGE", f"request body over {MAX_REQUEST_BYTES} bytes",
                                   limit=MAX_REQUEST_BYTES)) from None
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise _RequestError(_error(400, "REQUEST_INVALID", "request body is not valid JSON")) from None
    if not isinstance(body, Mapping):
        raise _RequestError(_error(400, "REQUEST_INVALID", "request body must be a JSON object"))
    return body


def _variables(body: Mapping[str, Any]) -> Mapping[str, Any]:
    variables = body.get("variables") or {}
    if not isinstance(variables, Mapping):
        raise _RequestError(_error(422, "REQUEST_INVALID", "`variables` must be a JSON object"))
    return variables


class _MetricsMiddleware:
    """Times every request, logs one line (method, path, status, ms) and feeds the counters.

    Pure ASGI rather than BaseHTTPMiddleware: it sees the real status even when a handler
    raises (counted as 500) and never buffers bodies. Headers and bodies are never logged.
    """

    def __init__(self, app: Any, metrics: RequestMetrics, skip_paths: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.skip_paths = skip_paths

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            path = str(scope.get("path", ""))
            access_logger.info("%s %s %d %.1fms", scope.get("method", "-"), path, status, elapsed_ms)
            if path not in self.skip_paths:
                self.metrics.record(status, elapsed_ms)


def create_app(
    loaded: LoadedComposition,
    *,
    sink: MetricsSink | None = None,
    flush_interval: float = 2.0,
) -> Starlette:
    """The instance's ASGI app. Ready (200 on the readiness path) between lifespan start and stop."""
    metrics = RequestMetrics()
    state = {"ready": False}
    active_sink: MetricsSink = sink if sink is not None else LogMetricsSink()

    def flush_once() -> None:
        batch = metrics.take_batch()
        if batch.request_count == 0:
            return
        try:
            active_sink.flush(batch)
        except Exception as exc:  # a flaky database must not take the instance down
            metrics.restore(batch)
            logger.error("metrics flush failed (kept for the next one): %s", redact(str(exc)))

    async def flusher() -> None:
        while True:
            await asyncio.sleep(flush_interval)
            await asyncio.to_thread(flush_once)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for warning in loaded.warnings:
            logger.warning("%s", warning)
        task = asyncio.create_task(flusher())
        state["ready"] = True
        logger.info(
            "composition %s %s (instance %s) ready",
            loaded.composition.get("name"),
            loaded.composition.get("version"),
            loaded.instance.get("id"),
        )
        try:
            yield
        finally:
            state["ready"] = False
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await asyncio.to_thread(flush_once)  # the last batch, at shutdown
            active_sink.close()

    async def live(request: Request) -> JSONResponse:
        return JSONResponse({"status": "alive"})

    async def ready(request: Request) -> JSONResponse:
        if not state["ready"]:
            return JSONResponse({"status": "not ready"}, status_code=503)
        return JSONResponse(
            {
                "status": "ready",
                "composition": loaded.composition.get("name"),
                "instance": loaded.instance.get("id"),
            }
        )

    async def composition(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "composition": loaded.composition,
                "instance": loaded.instance,
                "settings": loaded.display_settings,
                "components": loaded.display_components,
            }
        )

    async def metrics_view(request: Request) -> JSONResponse:
        totals = metrics.totals
        return JSONResponse(
            {
                "request_count": totals.request_count,
                "error_count": totals.error_count,
                "client_error_count": totals.client_error_count,
                "avg_response_time": totals.avg_ms,
            }
        )

    def render(prompt: PromptTemplate, values: Mapping[str, Any]) -> str:
        return render_template(prompt.text, prompt.variables, values)

    async def render_prompt(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        prompt = loaded.prompts.get(name)
        if prompt is None:
            return _from_exception(404, NotFound(f"prompt {name!r} is not part of this composition"))
        try:
            values = _variables(await _json_body(request))
            return JSONResponse({"text": render(prompt, values)})
        except _RequestError as exc:
            return exc.response
        except TemplateVariableError as exc:
            return _from_exception(422, exc)

    async def invoke_agent(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        agent = loaded.agents.get(name)
        if agent is None:
            return _from_exception(404, NotFound(f"agent {name!r} is not part of this composition"))
        try:
            body = await _json_body(request)
            values = _variables(body)
            user_input = body.get("input")
            if not isinstance(user_input, str):
                return _error(422, "REQUEST_INVALID", "`input` must be a string")
            prompts = [loaded.prompts[prompt_name] for prompt_name in agent.prompts]
            # System messages first (stable sort keeps the dependency order within a role).
            prompts.sort(key=lambda prompt: prompt.role != "system")
            messages = [{"role": prompt.role, "content": render(prompt, values)} for prompt in prompts]
        except _RequestError as exc:
            return exc.response
        except TemplateVariableError as exc:
            return _from_exception(422, exc)
        messages.append({"role": "user", "content": user_input})
        provider = str(agent.llm.get("provider") or "openai")
        model = str(agent.llm.get("model") or provider)
        if provider == "echo":
            # Offline and deterministic: lets deploy flows and tests exercise the whole path.
            output = f"echo({model}): {user_input}"
        else:
            try:
                output = await _call_openai_compatible(
                    agent.llm, messages, settings=loaded.settings, environ=loaded.environ
                )
            except UpstreamError as exc:
                return _from_exception(502, exc)
        return JSONResponse({"output": output, "messages": messages, "model": model, "provider": provider})

    health_paths = {DEFAULT_LIVENESS_PATH, DEFAULT_READINESS_PATH}
    health_paths |= {loaded.liveness_path, loaded.readiness_path}
    routes = [
        Route(DEFAULT_LIVENESS_PATH, live, methods=["GET"]),
        Route(DEFAULT_READINESS_PATH, ready, methods=["GET"]),
    ]
    if loaded.liveness_path != DEFAULT_LIVENESS_PATH:
        routes.append(Route(loaded.liveness_path, live, methods=["GET"]))
    if loaded.readiness_path != DEFAULT_READINESS_PATH:
        routes.append(Route(loaded.readiness_path, ready, methods=["GET"]))
    routes += [
        Route("/v1/composition", composition, methods=["GET"]),
        Route("/v1/metrics", metrics_view, methods=["GET"]),
        Route("/v1/prompts/{name}/render", render_prompt, methods=["POST"]),
        Route("/v1/agents/{name}/invoke", invoke_agent, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(_MetricsMiddleware, metrics=metrics, skip_paths=frozenset(health_paths))],
    )
    app.state.metrics = metrics
    return app


# --------------------------------------------------------------------------------------
# The process
# --------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m agentforge.runtime.server",
        description="Serve one deployed AgentForge composition instance.",
    )
    parser.add_argument("--bundle", required=True, type=Path, help="bundle directory holding resolved.json")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--instance-id", default=None, help="instance id (default: resolved.json)")
    parser.add_argument("--resolved", type=Path, default=None, help="resolved.json to read (default: in the bundle)")
    parser.add_argument("--flush-interval", type=float, default=2.0, help="seconds between metrics flushes")
    parser.add_argument("--metrics-file", type=Path, default=None, help="JSON-lines metrics when no database")
    return parser.parse_args(argv)


def _fail(exc: AgentForgeError) -> int:
    print(f"agentforge: {exc.code}: {exc.message}", file=sys.stderr, flush=True)
    if exc.hint:
        print(f"Hint: {exc.hint}", file=sys.stderr, flush=True)
    return exc.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Load the bundle (failing fast on a missing ${ENV}), then serve until SIGTERM/SIGINT."""
    import uvicorn  # only the process needs it, not importers of create_app

    args = _parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        loaded = load_bundle(args.bundle.resolve(), os.environ,
                             resolved_path=args.resolved.resolve() if args.resolved else None)
        instance_id = args.instance_id or loaded.instance.get("id")
        if instance_id is not None:
            try:
                instance_id = str(uuid.UUID(str(instance_id)))
            except ValueError:
                message = f"instance id {instance_id!r} is not a UUID"
                raise ConfigError(message, code="BUNDLE_INVALID") from None
        database_url = os.environ.get(DATABASE_URL_ENV)
        sink: MetricsSink
        if database_url:
            if instance_id is None:
                raise ConfigError(
                    f"{DATABASE_URL_ENV} is set but no instance id is known",
                    code="BUNDLE_INVALID",
                    hint="Pass --instance-id or write instance.id in resolved.json.",
                )
            sink = PostgresMetricsSink(database_url, instance_id)
        elif args.metrics_file is not None:
            sink = JsonLinesMetricsSink(args.metrics_file)
        else:
            sink = LogMetricsSink()
    except AgentForgeError as exc:
        return _fail(exc)

    app = create_app(loaded, sink=sink, flush_interval=args.flush_interval)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        access_log=False,  # our middleware logs one line per request, without query strings
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
