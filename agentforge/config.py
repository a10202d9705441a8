"""Settings: pydantic-settings with the env prefix ``AGENTFORGE_`` over a TOML config file.

Precedence, highest first: values passed in code (CLI flags) > environment variables >
the config file (``$XDG_CONFIG_HOME/agentforge/config.toml``, or ``AGENTFORGE_CONFIG_FILE``)
> defaults. ``DATABASE_URL`` is honoured when ``AGENTFORGE_DATABASE_URL`` is not set.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from agentforge.errors import ConfigError

APP_NAME = "agentforge"

#: Config-file keys read by ``agentforge.services.settings`` (its ``KEYS``, dots as ``_``), not
#: by :class:`Settings`; a test keeps the two lists equal. ``[custom]`` holds free-form keys.
SERVICE_FILE_KEYS = frozenset({
    "git_username", "git_email", "default_llm_provider", "default_llm_model", "output_format", "verbose_logging",
    "auto_sync", "allow_unsigned_components", "trusted_repositories", "auto_sync_max_age_seconds", "github_token",
})


def default_home() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_config_file() -> Path:
    explicit = os.environ.get("AGENTFORGE_CONFIG_FILE")
    if explicit:
        return Path(explicit)
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


class TomlFileSource(PydanticBaseSettingsSource):
    """Reads the flat or sectioned TOML config file; ``[github] token = …`` → ``github_token``."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path
        self._data: dict[str, Any] = {}
        if path.is_file():
            try:
                raw = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"{path}: not a valid TOML config file: {exc}",
                    hint="Fix or remove the file; `agentforge doctor` shows which file is read.",
                ) from exc
            for key, value in raw.items():
                if key == "custom" and isinstance(value, dict):
                    continue  # custom.NAME settings: free-form, read by agentforge.services.settings
                if isinstance(value, dict):
                    for sub, subvalue in value.items():
                        self._data[f"{key}_{sub}".replace("-", "_")] = subvalue
                else:
                    self._data[key.replace("-", "_")] = value
            known = set(settings_cls.model_fields) | SERVICE_FILE_KEYS
            unknown = sorted(k for k in self._data if k not in known)
            if unknown:
                # A misspelt key would otherwise be ignored in silence and its default used.
                close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
                raise ConfigError(
                    f"{path}: unknown setting {unknown[0]!r}"
                    + (f" (and {len(unknown) - 1} more: {', '.join(map(repr, unknown[1:]))})" if len(unknown) > 1
                       else ""),
                    code="CONFIG_KEY_UNKNOWN",
                    hint=(f"Did you mean {close[0]!r}? " if close else "")
                    + "The settings are the fields of the README's Configuration table and the keys "
                      "`agentforge config ls` lists; free-form keys go in a [custom] table.",
                )

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        known = set(self.settings_cls.model_fields)
        return {k: v for k, v in self._data.items() if k in known}


class Settings(BaseSettings):
    # An empty variable (`AGENTFORGE_HOME=`) means unset, not "the current folder".
    model_config = SettingsConfigDict(env_prefix="AGENTFORGE_", extra="ignore", populate_by_name=True,
                                      env_ignore_empty=True)

    home: Path = Field(default_factory=default_home,
                       description="Folder for mirrors, installs, bundles and the embedded database")
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENTFORGE_DATABASE_URL", "DATABASE_URL", "database_url"),
        description="PostgreSQL URL; unset = embedded PostgreSQL under the home folder",
    )
    sync_concurrency: int = Field(default=4, ge=1, le=64, description="Repositories synced in parallel")
    install_root: Path | None = Field(default=None, description="Where `install` materialises components")
    github_api_url: str = Field(default="https://api.github.com", description="GitHub REST API base URL")
    github_token: SecretStr | None = Field(default=None, description="Token for GitHub (prefer GITHUB_TOKEN)")
    github_timeout_seconds: int = Field(default=30, ge=1, le=600, description="Timeout of one GitHub API request")
    github_rate_limit_max_wait_seconds: float = Field(
        default=60.0, ge=0,
        description="Longest wait for a GitHub rate-limit reset inside one call; longer → a retryable error",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s) for stored tokens (AGENTFORGE_SECRET_KEY; comma-separated, first encrypts); "
                    "unset = <home>/secret.key, created 0600 on first use",
    )
    webhook_secret: SecretStr | None = Field(default=None, description="Global webhook HMAC secret")
    webhook_secret_refs: dict[str, str] = Field(
        default_factory=dict,
        description="Per-repository webhook secrets as references, never values: repository name → "
                    "'env:VARIABLE' or 'file:/path/to/secret' (falls back to webhook_secret)")
    webhook_port: int = Field(default=8787, ge=1, le=65535, description="Port of `agentforge webhook serve`")
    on_merge_deployment: str = Field(default="deploy-on-merge/deploy-on-merge",
                                     description="FLOW/DEPLOYMENT the webhook receiver starts for a merge")
    sync_all_cron: str = Field(default="*/15 * * * *", description="Cron schedule of the sync-all deployment")
    github_api_concurrency: int = Field(default=4, ge=1, le=100,
                                        description="Prefect tag concurrency limit on GitHub-calling tasks")
    sync_failure_backoff_seconds: int = Field(default=60, ge=0, description="Base back-off after a failed sync")
    git_timeout_seconds: float = Field(default=120.0, gt=0,
                                       description="Longest a git command may take (a clone or fetch above all); "
                                                   "a command killed at this limit is not retried (GIT_TIMEOUT)")

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlFileSource(settings_cls, default_config_file()))

    # Derived locations (not settings themselves).
    @property
    def mirrors_dir(self) -> Path:
        return self.home / "mirrors"

    @property
    def bundles_dir(self) -> Path:
        return self.home / "bundles"

    @property
    def instances_dir(self) -> Path:
        return self.home / "instances"

    @property
    def pgdata_dir(self) -> Path:
        return self.home / "pgdata"

    @property
    def effective_install_root(self) -> Path:
        return (self.install_root or self.home / "installs").expanduser().absolute()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ConfigError:
        raise
    except ValidationError as exc:
        raise ConfigError(_describe_invalid(exc), hint="Fix the value named above; `agentforge config ls` shows "
                          "every setting and where its value comes from.") from None
    except Exception as exc:
        raise ConfigError(f"invalid setting: {exc}", hint="Check AGENTFORGE_* variables and the config file.") from exc


_SECRET_HINTS = ("token", "secret", "key", "password", "url")


def _describe_invalid(exc: ValidationError) -> str:
    """One line per bad setting, naming where the value came from (the variable or the config
    file) and the rule it breaks; values of secret-looking settings are not echoed."""
    path = default_config_file()
    file_keys: dict[str, Any] = {}
    try:
        file_keys = TomlFileSource(Settings, path)._data if path.is_file() else {}
    except ConfigError:
        pass
    lines = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error.get("loc") else "?"
        field = Settings.model_fields.get(name)
        variables = ([a for a in field.validation_alias.choices if isinstance(a, str) and a.isupper()]
                     if field is not None and isinstance(field.validation_alias, AliasChoices)
                     else [f"AGENTFORGE_{name.upper()}"])
        from_env = next((v for v in variables if os.environ.get(v)), None)
        where = from_env or (f"{path}: {name}" if name in file_keys else name)
        shown = "" if any(h in name for h in _SECRET_HINTS) else f" (got {error.get('input')!r})"
        lines.append(f"{where}: {error['msg']}{shown}")
    return "invalid setting: " + "; ".join(lines)


def reset_settings_cache() -> None:
    get_settings.cache_clear()
