"""Token encryption at rest, the key file, the stored GitHub token and its precedence."""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from agentforge.config import Settings
from agentforge.errors import InternalError
from agentforge.secrets import (
    CIPHERTEXT_PREFIX,
    GITHUB_TOKEN_CONFIG_KEY,
    SecretError,
    clear_github_token,
    decrypt_token,
    encrypt_token,
    get_github_token,
    key_file_path,
    repository_token,
    store_github_token,
    store_repository_token,
    stored_github_token,
)

TOKEN = "ghp_" + "S3cretTokenValue" * 2 + "abcd"
ODD_TOKEN = "not-github-shaped-secret-7f3a9"


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("AGENTFORGE_SECRET_KEY", raising=False)
    monkeypatch.delenv("AGENTFORGE_GITHUB_TOKEN", raising=False)
    return Settings(home=tmp_path / "home")


def test_round_trip_creates_a_private_key_file(settings: Settings) -> None:
    path = key_file_path(settings)
    assert not path.exists()
    ciphertext = encrypt_token(TOKEN, settings=settings)
    assert ciphertext.startswith(CIPHERTEXT_PREFIX) and TOKEN not in ciphertext
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert decrypt_token(ciphertext, settings=settings) == TOKEN
    assert encrypt_token(TOKEN, settings=settings) != ciphertext  # a fresh IV every time
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary file left


def test_concurrent_first_use_agrees_on_one_key(settings: Settings) -> None:
    barrier = threading.Barrier(6)
    ciphertexts: list[str] = []

    def worker() -> None:
        barrier.wait()
        ciphertexts.append(encrypt_token(TOKEN, settings=settings))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ciphertexts) == 6
    assert all(decrypt_token(c, settings=settings) == TOKEN for c in ciphertexts)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_with_loose_permissions_is_refused(settings: Settings, mode: int) -> None:
    ciphertext = encrypt_token(TOKEN, settings=settings)
    path = key_file_path(settings)
    os.chmod(path, mode)
    for action in (lambda: encrypt_token(TOKEN, settings=settings), lambda: decrypt_token(ciphertext, settings=settings)):
        with pytest.raises(SecretError) as info:
            action()
        assert info.value.code == "SECRET_KEY_FILE_INSECURE"
        assert str(path) in info.value.message and f"chmod 600 {path}" in (info.value.hint or "")
    os.chmod(path, 0o600)
    assert decrypt_token(ciphertext, settings=settings) == TOKEN


def test_key_from_the_environment_and_rotation(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with_old = Settings(home=tmp_path / "h", secret_key=old)
    ciphertext = encrypt_token(TOKEN, settings=with_old)
    assert not key_file_path(with_old).exists()  # the environment's key is used, no file is made

    rotated = Settings(home=tmp_path / "h", secret_key=f"{new}, {old}")
    assert decrypt_token(ciphertext, settings=rotated) == TOKEN
    reencrypted = encrypt_token(TOKEN, settings=rotated)
    assert decrypt_token(reencrypted, settings=Settings(home=tmp_path / "h", secret_key=new)) == TOKEN

    with pytest.raises(SecretError) as info:
        decrypt_token(ciphertext, settings=Settings(home=tmp_path / "h", secret_key=new))
    assert info.value.code == "SECRET_DECRYPT_FAILED" and TOKEN not in str(info.value.to_dict())


def test_invalid_key_is_a_clear_error_that_does_not_echo_it(tmp_path: Path) -> None:
    bad = "definitely-not-a-fernet-key"
    with pytest.raises(SecretError) as info:
        encrypt_token(TOKEN, settings=Settings(home=tmp_path, secret_key=bad))
    assert info.value.code == "SECRET_KEY_INVALID" and "AGENTFORGE_SECRET_KEY" in info.value.message
    assert bad not in str(info.value.to_dict())


def test_plaintext_and_double_encryption_are_refused(settings: Settings) -> None:
    with pytest.raises(SecretError) as info:
        decrypt_token(TOKEN, settings=settings)
    assert info.value.code == "SECRET_NOT_ENCRYPTED" and TOKEN not in info.value.message
    with pytest.raises(SecretError) as info:
        encrypt_token(encrypt_token(TOKEN, settings=settings), settings=settings)
    assert info.value.code == "SECRET_ALREADY_ENCRYPTED"
    with pytest.raises(SecretError):
        encrypt_token("", settings=settings)
    with pytest.raises(SecretError) as info:
        decrypt_token(CIPHERTEXT_PREFIX + "garbage", settings=settings)
    assert info.value.code == "SECRET_DECRYPT_FAILED"


# --- the database never holds plaintext ---------------------------------------------------------


def _scan_database(session: Session, needle: str) -> list[str]:
    """Every row of every table, as text, that contains ``needle``."""
    tables = session.scalars(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).all()
    hits = []
    for table in tables:
        for row in session.scalars(sa.text(f'SELECT t::text FROM "{table}" t')):
            if needle in row:
                hits.append(f"{table}: {row}")
    return hits


def test_stored_github_token_is_encrypted_in_system_config(db_session: Session, settings: Settings,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert stored_github_token(session=db_session, settings=settings) is None
    store_github_token(f"  {ODD_TOKEN}\n", session=db_session, settings=settings)
    value = db_session.scalar(sa.text("SELECT value FROM system_config WHERE key = :k"),
                              {"k": GITHUB_TOKEN_CONFIG_KEY})
    assert set(value) == {"ciphertext"} and value["ciphertext"].startswith(CIPHERTEXT_PREFIX)
    assert _scan_database(db_session, ODD_TOKEN) == []
    assert stored_github_token(session=db_session, settings=settings) == ODD_TOKEN
    store_github_token(TOKEN, session=db_session, settings=settings)  # replaces, one row
    assert stored_github_token(session=db_session, settings=settings) == TOKEN
    assert _scan_database(db_session, TOKEN) == []
    assert clear_github_token(session=db_session) is True
    assert stored_github_token(session=db_session, settings=settings) is None
    assert ODD_TOKEN not in caplog.text and TOKEN not in caplog.text


def test_repository_access_token_column_holds_ciphertext(db_session: Session, settings: Settings) -> None:
    from models.enums import RepoType
    from models.secrets import set_repository_token_ciphertext
    from models.tables import Repository

    repo = Repository(name="crm-tools", url="https://github.com/acme/crm-tools.git", type=RepoType.MIXED)
    db_session.add(repo)
    db_session.flush()
    store_repository_token(repo.id, ODD_TOKEN, session=db_session, settings=settings)
    column = db_session.scalar(sa.select(Repository.access_token).where(Repository.id == repo.id))
    assert column is not None and column.startswith(CIPHERTEXT_PREFIX)
    assert _scan_database(db_session, ODD_TOKEN) == []
    assert repository_token(repo.id, session=db_session, settings=settings) == ODD_TOKEN

    with pytest.raises(InternalError) as info:  # no code path can write plaintext there
        set_repository_token_ciphertext(repo.id, ODD_TOKEN, session=db_session)
    assert ODD_TOKEN not in info.value.message
    store_repository_token(repo.id, None, session=db_session, settings=settings)
    assert repository_token(repo.id, session=db_session, settings=settings) is None


def test_plaintext_is_refused_by_the_system_config_store(db_session: Session) -> None:
    from models.secrets import set_encrypted_value

    with pytest.raises(InternalError) as info:
        set_encrypted_value(GITHUB_TOKEN_CONFIG_KEY, ODD_TOKEN, session=db_session)
    assert ODD_TOKEN not in info.value.message
    assert _scan_database(db_session, ODD_TOKEN) == []


def test_token_precedence(db_session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_github_token(settings, session=db_session) is None
    store_github_token("stored-token", session=db_session, settings=settings)
    assert get_github_token(settings, session=db_session) == "stored-token"
    configured = Settings(home=settings.home, github_token="setting-token")
    assert get_github_token(configured, session=db_session) == "setting-token"
    monkeypatch.setenv("GITHUB_TOKEN", "env-token")
    assert get_github_token(configured, session=db_session) == "env-token"
    monkeypatch.setenv("GITHUB_TOKEN", "  ")  # blank counts as unset
    assert get_github_token(settings, session=db_session) == "stored-token"


def test_token_from_environment_needs_no_database(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    broken = settings.model_copy(update={"database_url": "postgresql://nobody@127.0.0.1:1/none"})
    assert get_github_token(broken) == TOKEN
