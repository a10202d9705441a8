"""User and system settings: the keys `agentforge config` knows, their validation, and precedence.

Precedence, highest first (the same for every key):

=====================  ==========================================================
command-line flag      e.g. ``--json`` for ``output_format`` (a caller passes ``flag=``)
environment            ``AGENTFORGE_<KEY>`` (``AGENTFORGE_OUTPUT_FORMAT=yaml``)
database setting       ``user_settings`` (per user) or ``system_config`` (per install)
config file            ``config.toml`` (``AGENTFORGE_CONFIG_FILE``): ``output_format = "json"``
default                the design's default (``output_format = "table"``, ``auto_sync = true``, …)
=====================  ==========================================================

``github.token`` is a secret (encrypted in ``system_config`` by :mod:`agentforge.services.publish`);
it is listed as set/unset and never shown.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from agentforge.config import default_config_file
from agentforge.core.urls import normalise_repository_url
from agentforge.errors import ConfigError, UrlError
from models import Repository
from models import settings as settings_q

Source = Literal["flag", "environment", "database", "config file", "default"]
CUSTOM_PREFIX = "custom."
SECRET_KEYS = ("github.token",)
#: custom_settings entry listing the columns `config set` wrote (not a valid custom.NAME key).
EXPLICIT = "_explicit"


def current_user_id() -> str:
    """Whose ``user_settings`` row applies (``AGENTFORGE_USER``, else the login name)."""
    return os.environ.get("AGENTFORGE_USER") or getpass.getuser()


def _invalid(key: str, message: str, hint: str | None = None) -> ConfigError:
    return ConfigError(f"{key}: {message}", code="CONFIG_VALUE_INVALID", hint=hint)


def _parse_bool(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise _invalid(key, f"{raw!r} is not a boolean", "Use true or false.")


def _text(max_len: int, pattern: str | None = None, what: str = "") -> Callable[[str, Any], str]:
    def parse(key: str, raw: Any) -> str:
        text = str(raw).strip()
        if not text:
            raise _invalid(key, "the value is empty", f"`agentforge config unset {key}` removes it.")
        if len(text) > max_len:
            raise _invalid(key, f"longer than {max_len} characters")
        if pattern and not re.fullmatch(pattern, text):
            raise _invalid(key, f"{text!r} is not {what}")
        return text
    return parse


def _choice(*options: str) -> Callable[[str, Any], str]:
    def parse(key: str, raw: Any) -> str:
        text = str(raw).strip().lower()
        if text not in options:
            raise _invalid(key, f"{raw!r} is not one of {', '.join(options)}")
        return text
    return parse


def _int(low: int, high: int) -> Callable[[str, Any], int]:
    def parse(key: str, raw: Any) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise _invalid(key, f"{raw!r} is not an integer") from None
        if not low <= value <= high:
            raise _invalid(key, f"{value} is outside {low}..{high}")
        return value
    return parse


def _url_list(key: str, raw: Any) -> list[str]:
    items = raw if isinstance(raw, (list, tuple)) else [x for x in re.split(r"[,\s]+", str(raw)) if x]
    out: list[str] = []
    for item in items:
        try:
            url = normalise_repository_url(str(item))
        except UrlError as exc:
            raise _invalid(key, f"{item!r} is not a repository URL ({exc.message})") from None
        if url not in out:
            out.append(url)
    return sorted(out)


@dataclass(frozen=True)
class SettingKey:
    name: str
    store: Literal["user", "system", "secret"]
    parse: Callable[[str, Any], Any]
    default: Any
    description: str

    @property
    def env(self) -> str:
        return "AGENTFORGE_" + re.sub(r"[^A-Z0-9]", "_", self.name.upper())


KEYS: dict[str, SettingKey] = {k.name: k for k in (
    SettingKey("git_username", "user", _text(255), None, "Author name of commits AgentForge makes"),
    SettingKey("git_email", "user", _text(255, r"[^@\s]+@[^@\s]+", "an e-mail address"), None,
               "Author e-mail of commits AgentForge makes"),
    SettingKey("default_llm_provider", "user", _text(100, r"[A-Za-z0-9][A-Za-z0-9._-]*", "a provider name"), None,
               "LLM provider given to an agent whose spec.llm names none (at deploy)"),
    SettingKey("default_llm_model", "user", _text(100, r"[^\s]+", "a model name"), None,
               "LLM model given to an agent whose spec.llm names none (at deploy)"),
    SettingKey("output_format", "user", _choice("table", "json", "yaml"), "table",
               "Output of listing commands: table, json or yaml (--json wins)"),
    SettingKey("verbose_logging", "user", _parse_bool, False, "Tracebacks and flow logs, as with --verbose"),
    SettingKey("auto_sync", "user", _parse_bool, True,
               "lock/install/deploy first sync repositories whose last sync is older than "
               "auto_sync_max_age_seconds"),
    SettingKey("allow_unsigned_components", "user", _parse_bool, False,
               "Accept releases of untrusted repositories without a valid signature by an allowed key"),
    SettingKey("trusted_repositories", "user", _url_list, [],
               "Repository URLs whose releases need no signature (`repo trust` / `repo untrust`)"),
    SettingKey("auto_sync_max_age_seconds", "system", _int(0, 30 * 86400), 900,
               "How old a repository's last sync may be before auto_sync syncs it again"),
    SettingKey("github.token", "secret", _text(1000), None,
               "GitHub token (stored encrypted; set it with `config set github.token`, read without echo)"),
)}


def setting_key(key: str) -> SettingKey:
    """The key's definition; ``custom.NAME`` keys are free-form JSON values in custom_settings."""
    normal = key.strip()
    if normal in KEYS:
        return KEYS[normal]
    if normal.startswith(CUSTOM_PREFIX) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}",
                                                         normal[len(CUSTOM_PREFIX):]):
        return SettingKey(normal, "user", _custom_value, None, "custom setting")
    raise ConfigError(f"unknown setting {key!r}", code="CONFIG_KEY_UNKNOWN",
                      hint="Known: " + ", ".join(KEYS) + ", custom.NAME. `agentforge config ls` lists them.")


def _custom_value(key: str, raw: Any) -> Any:
    """JSON when it parses (``42``, ``true``, ``{"a": 1}``), else the text itself."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


# --- the layers ---------------------------------------------------------------------------------


def read_config_file() -> dict[str, Any]:
    """The config file's keys, flattened like :class:`agentforge.config.TomlFileSource` (``[a] b`` → ``a_b``);
    a ``[custom]`` table gives ``custom.NAME`` keys."""
    path = default_config_file()
    if not path.is_file():
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML config file: {exc}") from exc
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "custom" and isinstance(value, dict):
            out.update({f"{CUSTOM_PREFIX}{k}": v for k, v in value.items()})
        elif isinstance(value, dict):
            out.update({f"{key}_{sub}".replace("-", "_"): v for sub, v in value.items()})
        else:
            out[key.replace("-", "_")] = value
    return out


def _database_value(key: SettingKey, session: Session | None, user_id: str) -> tuple[bool, Any]:
    if session is None:
        return False, None
    if key.store == "system":
        return settings_q.get_system_value(session=session, key=key.name)
    if key.store == "secret":
        from models.secrets import get_encrypted_value

        return (get_encrypted_value(key.name, session=session) is not None), "(set, encrypted)"
    row = settings_q.get_user_settings(session=session, user_id=user_id)
    if key.name.startswith(CUSTOM_PREFIX):
        custom = (row.custom_settings if row is not None else None) or {}
        name = key.name[len(CUSTOM_PREFIX):]
        return (name in custom), custom.get(name)
    if key.name == "trusted_repositories":
        return True, sorted(settings_q.trusted_urls(session=session, user_id=user_id))
    if row is None:
        return False, None
    value = getattr(row, key.name)
    # Columns with a server default always hold a value: it counts as a database setting only
    # when `config set` wrote it (EXPLICIT), so an untouched row does not hide the config file.
    if value is None or key.name not in ((row.custom_settings or {}).get(EXPLICIT) or []):
        return False, None
    return True, value


@dataclass(frozen=True)
class Resolved:
    key: str
    value: Any
    source: Source
    description: str


def resolve(key: str, *, session: Session | None, flag: Any = None, user_id: str | None = None,
            file_values: Mapping[str, Any] | None = None) -> Resolved:
    """The effective value of ``key`` and where it came from (see the module's precedence table)."""
    spec = setting_key(key)
    user_id = user_id or current_user_id()
    if flag is not None:
        return Resolved(spec.name, spec.parse(spec.name, flag), "flag", spec.description)
    if spec.store != "secret" and not spec.name.startswith(CUSTOM_PREFIX) and os.environ.get(spec.env):
        raw = os.environ[spec.env]  # an empty variable counts as unset, as for Settings
        try:
            return Resolved(spec.name, spec.parse(spec.name, raw), "environment", spec.description)
        except ConfigError as exc:
            raise ConfigError(f"{spec.env}: {exc.message}", code=exc.code, hint=f"Fix or unset {spec.env}.") from None
    values = read_config_file() if file_values is None else file_values
    if spec.store == "secret":
        # Where get_github_token takes the token from, in its order (never the value itself).
        for variable in ("GITHUB_TOKEN", spec.env):
            if os.environ.get(variable, "").strip():
                return Resolved(spec.name, f"(set, from {variable})", "environment", spec.description)
        file_key = spec.name.replace(".", "_")
        if isinstance(values.get(file_key), str) and values[file_key].strip():
            return Resolved(spec.name, "(set)", "config file", spec.description)
    present, value = _database_value(spec, session, user_id)
    if present:
        return Resolved(spec.name, value, "database", spec.description)
    if spec.name in values and spec.store != "secret":
        try:
            return Resolved(spec.name, spec.parse(spec.name, values[spec.name]), "config file", spec.description)
        except ConfigError as exc:
            raise ConfigError(f"{default_config_file()}: {exc.message}", code=exc.code) from None
    return Resolved(spec.name, spec.default, "default", spec.description)


def resolve_all(*, session: Session | None, user_id: str | None = None) -> list[Resolved]:
    """Every known key plus the user's custom.* keys, resolved."""
    user_id = user_id or current_user_id()
    file_values = read_config_file()
    names = list(KEYS)
    row = settings_q.get_user_settings(session=session, user_id=user_id) if session is not None else None
    custom = sorted({*(f"{CUSTOM_PREFIX}{k}" for k in ((row.custom_settings if row else None) or {})
                       if k != EXPLICIT),
                     *(k for k in file_values if k.startswith(CUSTOM_PREFIX))})
    return [resolve(n, session=session, user_id=user_id, file_values=file_values) for n in [*names, *custom]]


def set_value(key: str, raw: Any, *, session: Session, user_id: str | None = None) -> Any:
    """Validate ``raw`` for ``key`` and store it in the database; returns the stored value."""
    spec = setting_key(key)
    if spec.store == "secret":
        raise ConfigError(f"{spec.name} is a secret: `agentforge config set {spec.name}` reads it without echo",
                          code="CONFIG_SECRET")
    value = spec.parse(spec.name, raw)
    user_id = user_id or current_user_id()
    if spec.store == "system":
        settings_q.set_system_value(session=session, key=spec.name, value=value, description=spec.description)
    elif spec.name.startswith(CUSTOM_PREFIX):
        row = settings_q.ensure_user_settings(session=session, user_id=user_id)
        custom = dict(row.custom_settings or {})
        custom[spec.name[len(CUSTOM_PREFIX):]] = value
        settings_q.update_user_settings(session=session, user_id=user_id, values={"custom_settings": custom})
    else:
        row = settings_q.ensure_user_settings(session=session, user_id=user_id)
        custom = dict(row.custom_settings or {})
        custom[EXPLICIT] = sorted({*(custom.get(EXPLICIT) or []), spec.name})
        settings_q.update_user_settings(session=session, user_id=user_id,
                                        values={spec.name: value, "custom_settings": custom})
    return value


def unset_value(key: str, *, session: Session, user_id: str | None = None) -> bool:
    """Back to the next layer (config file or default); True when something was stored."""
    spec = setting_key(key)
    user_id = user_id or current_user_id()
    if spec.store == "system":
        return settings_q.delete_system_value(session=session, key=spec.name)
    row = settings_q.get_user_settings(session=session, user_id=user_id)
    if row is None:
        return False
    if spec.name.startswith(CUSTOM_PREFIX):
        custom = dict(row.custom_settings or {})
        removed = custom.pop(spec.name[len(CUSTOM_PREFIX):], None) is not None
        settings_q.update_user_settings(session=session, user_id=user_id, values={"custom_settings": custom or None})
        return removed
    custom = dict(row.custom_settings or {})
    explicit = [n for n in (custom.get(EXPLICIT) or []) if n != spec.name]
    was_set = spec.name in (custom.get(EXPLICIT) or []) or spec.name == "trusted_repositories"
    if explicit:
        custom[EXPLICIT] = explicit
    else:
        custom.pop(EXPLICIT, None)
    reset = [] if spec.name == "trusted_repositories" else spec.default
    settings_q.update_user_settings(session=session, user_id=user_id,
                                    values={spec.name: reset, "custom_settings": custom or None})
    return was_set


# --- what other commands ask of the settings -------------------------------------------------------


@dataclass(frozen=True)
class TrustPolicy:
    trusted: set[str]
    allow_unsigned: bool


def trust_policy(*, session: Session, user_id: str | None = None) -> TrustPolicy:
    user_id = user_id or current_user_id()
    trusted = resolve("trusted_repositories", session=session, user_id=user_id).value
    allow = resolve("allow_unsigned_components", session=session, user_id=user_id).value
    return TrustPolicy(trusted=set(trusted), allow_unsigned=bool(allow))


def stale_repositories(*, session: Session, user_id: str | None = None, now: datetime | None = None
                       ) -> list[str]:
    """Names of active repositories to sync before lock/install/deploy: none unless auto_sync is on;
    else those never synced or last synced longer ago than auto_sync_max_age_seconds — except the
    ones still in their failure back-off (``next_sync_after``): a broken or unreachable repository
    is not retried before every command (an explicit `agentforge sync NAME` still retries it)."""
    if not resolve("auto_sync", session=session, user_id=user_id).value:
        return []
    age = int(resolve("auto_sync_max_age_seconds", session=session, user_id=user_id).value)
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=age)
    return list(session.scalars(sa.select(Repository.name).where(
        Repository.is_active.is_(True),
        sa.or_(Repository.next_sync_after.is_(None), Repository.next_sync_after <= now),
        sa.or_(Repository.last_sync.is_(None), Repository.last_sync < cutoff)).order_by(Repository.name)))


def llm_defaults(*, session: Session | None, user_id: str | None = None) -> dict[str, str]:
    """``{"provider": …, "model": …}`` from default_llm_provider/model (only the ones set)."""
    out: dict[str, str] = {}
    for field, key in (("provider", "default_llm_provider"), ("model", "default_llm_model")):
        value = resolve(key, session=session, user_id=user_id).value
        if value:
            out[field] = str(value)
    return out


def apply_llm_defaults(kind: str, spec: Mapping[str, Any], defaults: Mapping[str, str]) -> dict[str, Any]:
    """An Agent's resolved spec with ``llm.provider`` / ``llm.model`` filled where it names none.

    Only missing (or empty) values are filled: a composition's override or the agent's own
    choice always wins over the user's default.
    """
    out = dict(spec)
    if kind.lower() != "agent" or not defaults:
        return out
    llm = out.get("llm")
    llm = dict(llm) if isinstance(llm, Mapping) else {}
    for field, value in defaults.items():
        if not llm.get(field):
            llm[field] = value
    out["llm"] = llm
    return out


def normalise_urls(urls: Sequence[str]) -> list[str]:
    return _url_list("trusted_repositories", list(urls))
