"""Settings: keys, validation, precedence (flag > env > database > config file > default), the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.orm import Session

from agentforge.errors import ConfigError
from agentforge.services import settings as svc
from models import Repository, RepoType
from models import settings as settings_q
from tests.cli.helpers import cli


@pytest.fixture()
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.toml"
    monkeypatch.setenv("AGENTFORGE_CONFIG_FILE", str(path))
    monkeypatch.delenv("AGENTFORGE_OUTPUT_FORMAT", raising=False)
    return path


def test_precedence_flag_env_database_file_default(db_session: Session, config_file: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def get(flag: str | None = None) -> tuple[object, str]:
        r = svc.resolve("output_format", session=db_session, flag=flag, user_id="u1")
        return r.value, r.source

    assert get() == ("table", "default")
    config_file.write_text('output_format = "json"\n')
    assert get() == ("json", "config file")
    svc.set_value("output_format", "table", session=db_session, user_id="u1")  # = the default, yet explicit
    assert get() == ("table", "database")
    monkeypatch.setenv("AGENTFORGE_OUTPUT_FORMAT", "yaml")
    assert get() == ("yaml", "environment")
    assert get(flag="json") == ("json", "flag")
    monkeypatch.delenv("AGENTFORGE_OUTPUT_FORMAT")
    assert svc.unset_value("output_format", session=db_session, user_id="u1")
    assert get() == ("json", "config file")


def test_validation_names_the_key(db_session: Session) -> None:
    cases = {"auto_sync": "maybe", "output_format": "xml", "git_email": "not-an-email",
             "trusted_repositories": "::nope::", "auto_sync_max_age_seconds": "-5"}
    for key, value in cases.items():
        with pytest.raises(ConfigError) as info:
            svc.set_value(key, value, session=db_session, user_id="u1")
        assert info.value.code == "CONFIG_VALUE_INVALID" and key in info.value.message and info.value.exit_code == 2
    with pytest.raises(ConfigError) as unknown:
        svc.set_value("colour", "red", session=db_session, user_id="u1")
    assert unknown.value.code == "CONFIG_KEY_UNKNOWN"


def test_every_user_settings_field_and_system_key(db_session: Session) -> None:
    values = {"git_username": "Ada", "git_email": "ada@example.invalid", "default_llm_provider": "anthropic",
              "default_llm_model": "claude-x", "output_format": "yaml", "verbose_logging": "yes",
              "auto_sync": "off", "allow_unsigned_components": "true",
              "trusted_repositories": "github.com/a/b, https://git.example.com/c/d.git",
              "custom.team": '{"name": "core"}', "auto_sync_max_age_seconds": "60"}
    for key, value in values.items():
        svc.set_value(key, value, session=db_session, user_id="u1")
    got = {r.key: (r.value, r.source) for r in svc.resolve_all(session=db_session, user_id="u1")}
    assert got["verbose_logging"] == (True, "database") and got["auto_sync"] == (False, "database")
    assert got["trusted_repositories"][0] == ["https://git.example.com/c/d", "https://github.com/a/b"]
    assert got["custom.team"] == ({"name": "core"}, "database")
    assert got["auto_sync_max_age_seconds"] == (60, "database")
    row = settings_q.get_user_settings(session=db_session, user_id="u1")
    assert row is not None and row.default_llm_model == "claude-x" and row.output_format == "yaml"
    desc = db_session.scalar(sa.text("SELECT description FROM system_config WHERE key = 'auto_sync_max_age_seconds'"))
    assert desc and "auto_sync" in desc
    assert "github.token" in got and got["github.token"][1] == "default"  # listed, never shown


def test_repo_add_is_trusted_by_trigger(db_session: Session) -> None:
    db_session.add(Repository(name="r1", url="https://example.invalid/o/r1", type=RepoType.MIXED))
    db_session.flush()
    assert "https://example.invalid/o/r1" in settings_q.trusted_urls(session=db_session, user_id="nobody-yet")
    settings_q.ensure_user_settings(session=db_session, user_id="u2")  # seeded with r1
    settings_q.set_trusted(session=db_session, user_id="u2", url="https://example.invalid/o/r1", trusted=False)
    db_session.add(Repository(name="r2", url="https://example.invalid/o/r2", type=RepoType.MIXED))
    db_session.flush()
    assert settings_q.trusted_urls(session=db_session, user_id="u2") == {"https://example.invalid/o/r2"}


def test_stale_repositories_and_llm_defaults(db_session: Session, config_file: Path) -> None:
    now = datetime.now(UTC)
    for name, last in (("fresh", now), ("old", now - timedelta(hours=2)), ("never", None)):
        db_session.add(Repository(name=name, url=f"https://example.invalid/o/{name}", type=RepoType.MIXED,
                                  last_sync=last))
    db_session.add(Repository(name="off", url="https://example.invalid/o/off", type=RepoType.MIXED, is_active=False))
    # Failing: still in its back-off (not retried before every command), and past it (retried).
    db_session.add(Repository(name="broken", url="https://example.invalid/o/broken", type=RepoType.MIXED,
                              failure_count=3, next_sync_after=now + timedelta(minutes=5)))
    db_session.add(Repository(name="broken-due", url="https://example.invalid/o/broken-due", type=RepoType.MIXED,
                              failure_count=1, next_sync_after=now - timedelta(seconds=1)))
    db_session.flush()
    assert svc.stale_repositories(session=db_session, user_id="u3") == ["broken-due", "never", "old"]
    svc.set_value("auto_sync", "false", session=db_session, user_id="u3")
    assert svc.stale_repositories(session=db_session, user_id="u3") == []

    svc.set_value("default_llm_provider", "openai", session=db_session, user_id="u3")
    defaults = svc.llm_defaults(session=db_session, user_id="u3")
    assert defaults == {"provider": "openai"}
    assert svc.apply_llm_defaults("Agent", {"llm": {"model": "m"}}, defaults) == {"llm": {"model": "m",
                                                                                          "provider": "openai"}}
    assert svc.apply_llm_defaults("Agent", {"llm": {"provider": "own"}}, defaults)["llm"]["provider"] == "own"
    assert svc.apply_llm_defaults("Tool", {}, defaults) == {}


def test_cli_config_and_output_format(clean_db: sa.Engine, tmp_path: Path) -> None:
    env = {"AGENTFORGE_USER": "cli-user", "AGENTFORGE_CONFIG_FILE": str(tmp_path / "none.toml")}
    res = cli("config", "set", "auto_sync", "maybe", env=env)
    assert res.code == 2 and "CONFIG_VALUE_INVALID" in res.err and "auto_sync" in res.err
    res = cli("config", "set", "output_format", "yaml", env=env)
    assert res.code == 0, res.err
    res = cli("config", "get", "output_format", env=env)
    assert res.code == 0 and yaml.safe_load(res.out) == {"key": "output_format", "value": "yaml",
                                                         "source": "database"}
    res = cli("repo", "ls", env=env)  # a listing command honours it
    assert res.code == 0 and yaml.safe_load(res.out) == []
    res = cli("--json", "config", "ls", env=env)  # the flag wins
    assert res.code == 0 and {"key": "output_format", "value": "yaml", "source": "database"}.items() <= \
        next(d for d in res.json() if d["key"] == "output_format").items()
    res = cli("config", "get", "output_format", env={**env, "AGENTFORGE_OUTPUT_FORMAT": "json"})
    assert res.code == 0 and res.json()["source"] == "environment"
    res = cli("config", "unset", "output_format", env=env)
    assert res.code == 0 and "removed" in res.out
    res = cli("config", "ls", env=env)
    assert res.code == 0 and "allow_unsigned_components" in res.out and "trusted_repositories" in res.out


def test_an_empty_variable_counts_as_unset(db_session: Session, config_file: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`AGENTFORGE_HOME=` used to put the home (mirrors, the embedded database) in the current folder."""
    from agentforge.config import Settings, default_home

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTFORGE_HOME", "")
    monkeypatch.setenv("AGENTFORGE_SYNC_CONCURRENCY", "")
    settings = Settings()
    assert settings.home == default_home().expanduser().absolute() and settings.home != tmp_path
    assert settings.sync_concurrency == 4
    config_file.write_text('output_format = "json"\n')
    monkeypatch.setenv("AGENTFORGE_OUTPUT_FORMAT", "")
    r = svc.resolve("output_format", session=db_session, user_id="u1")
    assert (r.value, r.source) == ("json", "config file")


def test_the_config_file_keys_are_the_settings_and_the_service_keys() -> None:
    """``config.SERVICE_FILE_KEYS`` (what the file may hold besides ``Settings``) follows ``KEYS``."""
    from agentforge.config import SERVICE_FILE_KEYS

    assert {k.replace(".", "_") for k in svc.KEYS} == SERVICE_FILE_KEYS


def test_a_misspelt_or_mistyped_setting_is_named_with_its_source(clean_db: sa.Engine, tmp_path: Path) -> None:
    """An unknown key in the config file is refused (it used to be ignored, and its default used);
    a bad value names the file or the variable it came from, without a pydantic dump."""
    path = tmp_path / "config.toml"
    env = {"AGENTFORGE_CONFIG_FILE": str(path)}
    path.write_text('sync_concurency = 8\n[custom]\nanything = 1\n[github]\ntoken = "t"\n')
    res = cli("repo", "ls", env=env)
    assert res.code == 2 and "CONFIG_KEY_UNKNOWN" in res.err and str(path) in res.err
    assert "'sync_concurency'" in res.err and "Did you mean 'sync_concurrency'" in res.err
    assert "Traceback" not in res.err

    path.write_text('sync_concurrency = 99\ngit_email = "a@b.c"\n[custom]\nanything = 1\n')
    res = cli("repo", "ls", env=env)
    assert res.code == 2 and "CONFIG_INVALID" in res.err
    assert f"{path}: sync_concurrency" in res.err and "less than or equal to 64" in res.err and "(got 99)" in res.err
    assert "errors.pydantic.dev" not in res.err and "validation error" not in res.err

    res = cli("repo", "ls", env={**env, "AGENTFORGE_SYNC_CONCURRENCY": "lots"})
    assert res.code == 2 and "AGENTFORGE_SYNC_CONCURRENCY: Input should be a valid integer" in res.err

    path.write_text("sync_concurrency = 2\n")
    secret = "not-a-valid-fernet-key-but-secret"
    res = cli("repo", "ls", env={**env, "AGENTFORGE_WEBHOOK_PORT": "0", "AGENTFORGE_GITHUB_TOKEN": secret})
    assert res.code == 2 and "AGENTFORGE_WEBHOOK_PORT" in res.err and secret not in res.err
    path.write_text("[github]\ntoken = 123456789\n")
    res = cli("repo", "ls", env=env)
    assert res.code == 2 and f"{path}: github_token" in res.err and "123456789" not in res.err


def test_config_shows_where_the_github_token_comes_from_without_its_value(db_session: Session, config_file: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`config get/ls github.token` said '- (default)' while GITHUB_TOKEN or the file's
    [github] token was in use; it now names that source, as get_github_token reads them."""
    for name in ("GITHUB_TOKEN", "AGENTFORGE_GITHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    r = svc.resolve("github.token", session=db_session, user_id="u1")
    assert (r.value, r.source) == (None, "default")
    config_file.write_text('[github]\ntoken = "ghp_fromthefile0123456789abcdefghij"\n')
    r = svc.resolve("github.token", session=db_session, user_id="u1")
    assert (r.value, r.source) == ("(set)", "config file")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_fromtheenv0123456789abcdefghijk")
    r = svc.resolve("github.token", session=db_session, user_id="u1")
    assert (r.value, r.source) == ("(set, from GITHUB_TOKEN)", "environment")
    assert all("ghp_" not in str(x.value) for x in svc.resolve_all(session=db_session, user_id="u1"))
