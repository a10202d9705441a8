"""Token encryption at rest, and where the GitHub token comes from.

Tokens stored by AgentForge (``repositories.access_token``, the ``github.token`` entry of
``system_config``) are Fernet ciphertexts (AES-128-CBC + HMAC-SHA256), written as
``fernet:v1:<token>`` so a plaintext value can never be mistaken for a ciphertext, nor a
ciphertext handed to GitHub as if it were a token.

The key comes from, in order:

1. ``AGENTFORGE_SECRET_KEY`` (the ``secret_key`` setting): one Fernet key, or several
   separated by commas — the first encrypts, all decrypt, so keys can be rotated;
2. ``<home>/secret.key``, created with mode 0600 on first use. A key file readable or
   writable by group or others, or owned by another user, is refused (it would make every
   stored token readable): ``SECRET_KEY_FILE_INSECURE``.

The GitHub token itself, highest first: ``GITHUB_TOKEN`` in the environment, the
``github_token`` setting (``AGENTFORGE_GITHUB_TOKEN`` or ``[github] token`` in the config
file), then the encrypted token stored by ``agentforge config set github.token``.

Layering: the crypto functions import only settings and errors. The token-store functions
reach the database through ``models.secrets``, imported inside them, so that
``models.secrets`` may import this module's ciphertext check without an import cycle at
load time; callers of the store live above ``models`` (CLI, tasks, services).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from agentforge.config import Settings, get_settings
from agentforge.errors import AgentForgeError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = [
    "CIPHERTEXT_PREFIX",
    "GITHUB_TOKEN_CONFIG_KEY",
    "SecretError",
    "clear_github_token",
    "decrypt_token",
    "encrypt_token",
    "get_github_token",
    "is_ciphertext",
    "key_file_path",
    "repository_token",
    "store_github_token",
    "store_repository_token",
    "stored_github_token",
]

#: Marks (and versions) a stored ciphertext; anything else in a secret column is refused.
CIPHERTEXT_PREFIX = "fernet:v1:"
#: The ``system_config`` key of the settings-level GitHub token.
GITHUB_TOKEN_CONFIG_KEY = "github.token"
KEY_FILE_NAME = "secret.key"

_KEY_HINT = (
    "Set AGENTFORGE_SECRET_KEY to a key made by "
    "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`, "
    "or unset it to use <home>/secret.key."
)


class SecretError(AgentForgeError):
    """A secret that cannot be encrypted, decrypted or whose key cannot be used."""

    code = "SECRET_ERROR"


def key_file_path(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / KEY_FILE_NAME


def is_ciphertext(value: str) -> bool:
    return value.startswith(CIPHERTEXT_PREFIX)


def encrypt_token(token: str, *, settings: Settings | None = None) -> str:
    """``fernet:v1:…`` for a token; never stores or logs the token itself."""
    if not token:
        raise SecretError("refusing to encrypt an empty token", code="SECRET_EMPTY")
    if is_ciphertext(token):
        # Encrypting twice would make decrypt_token hand a ciphertext to GitHub as a token.
        raise SecretError("the value is already encrypted", code="SECRET_ALREADY_ENCRYPTED")
    return CIPHERTEXT_PREFIX + _fernet(settings).encrypt(token.encode("utf-8")).decode("ascii")


def decrypt_token(value: str, *, settings: Settings | None = None) -> str:
    """The token inside a ``fernet:v1:`` ciphertext; a plaintext value is refused, not passed through."""
    if not is_ciphertext(value):
        raise SecretError(
            "a stored secret is not encrypted (no 'fernet:v1:' prefix); refusing to use it",
            code="SECRET_NOT_ENCRYPTED",
            hint="Set the token again (`agentforge config set github.token`) so it is stored encrypted.",
        )
    try:
        return _fernet(settings).decrypt(value[len(CIPHERTEXT_PREFIX):].encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError, ValueError) as exc:
        raise SecretError(
            "a stored secret cannot be decrypted with the current key",
            code="SECRET_DECRYPT_FAILED",
            hint="The key changed (AGENTFORGE_SECRET_KEY or <home>/secret.key); restore it, "
                 "or set the token again with `agentforge config set github.token`.",
        ) from exc


# --- keys ---------------------------------------------------------------------------------


def _fernet(settings: Settings | None) -> MultiFernet:
    settings = settings or get_settings()
    if settings.secret_key is not None:
        raw_keys = [k.strip() for k in settings.secret_key.get_secret_value().split(",") if k.strip()]
        if not raw_keys:
            raise SecretError("AGENTFORGE_SECRET_KEY is empty", code="SECRET_KEY_INVALID", hint=_KEY_HINT)
        return MultiFernet([_parse_key(k, "AGENTFORGE_SECRET_KEY") for k in raw_keys])
    return MultiFernet([_parse_key(_read_or_create_key_file(key_file_path(settings)), str(key_file_path(settings)))])


def _parse_key(raw: str, where: str) -> Fernet:
    try:
        return Fernet(raw.encode("ascii"))
    except (ValueError, UnicodeError) as exc:
        # The message names where the key came from, never the key.
        raise SecretError(f"{where}: not a valid Fernet key (32 url-safe base64 bytes)",
                          code="SECRET_KEY_INVALID", hint=_KEY_HINT) from exc


def _check_key_file(path: Path) -> None:
    if os.name != "posix":  # pragma: no cover - modes mean nothing there
        return
    info = path.stat()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(
            f"{path}: the key file is accessible by other users (mode {stat.S_IMODE(info.st_mode):04o}); "
            "refusing to use it",
            code="SECRET_KEY_FILE_INSECURE",
            hint=f"Run `chmod 600 {path}` (and consider rotating stored tokens).",
        )
    if info.st_uid != os.getuid():
        raise SecretError(f"{path}: the key file belongs to another user; refusing to use it",
                          code="SECRET_KEY_FILE_INSECURE", hint=f"Run `chown {os.getuid()} {path}`.")


def _read_or_create_key_file(path: Path) -> str:
    if not path.exists():
        _create_key_file(path)
    _check_key_file(path)
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeError) as exc:
        raise SecretError(f"{path}: cannot read the key file: {exc}", code="SECRET_KEY_INVALID",
                          hint=_KEY_HINT) from exc


def _create_key_file(path: Path) -> None:
    """Write a new key atomically: two processes starting at once end up with one key.

    The key is written to a 0600 temporary file in the same folder and hard-linked into
    place; ``link`` fails when the name exists, so a concurrent creator's key wins and
    nobody ever reads a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".secret-", dir=path.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(Fernet.generate_key().decode("ascii") + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


# --- the settings-level GitHub token --------------------------------------------------------


def store_github_token(token: str, *, session: Session, settings: Settings | None = None) -> None:
    """Store the token for ``agentforge config set github.token`` (encrypted; flushes, no commit)."""
    from models.secrets import set_encrypted_value

    token = token.strip()
    if not token:
        raise SecretError("the GitHub token is empty", code="SECRET_EMPTY",
                          hint="Paste the token when `agentforge config set github.token` asks for it.")
    set_encrypted_value(GITHUB_TOKEN_CONFIG_KEY, encrypt_token(token, settings=settings), session=session,
                        description="GitHub token set by `agentforge config set github.token`")


def stored_github_token(*, session: Session, settings: Settings | None = None) -> str | None:
    from models.secrets import get_encrypted_value

    ciphertext = get_encrypted_value(GITHUB_TOKEN_CONFIG_KEY, session=session)
    return None if ciphertext is None else decrypt_token(ciphertext, settings=settings)


def clear_github_token(*, session: Session) -> bool:
    from models.secrets import delete_encrypted_value

    return delete_encrypted_value(GITHUB_TOKEN_CONFIG_KEY, session=session)


def get_github_token(settings: Settings | None = None, *, session: Session | None = None) -> str | None:
    """The token to use: ``GITHUB_TOKEN`` > the ``github_token`` setting > the stored one, or None.

    The database is only consulted when neither of the first two is set; without a
    ``session`` a short transaction of its own is opened.
    """
    settings = settings or get_settings()
    env_token = os.environ.get("GITHUB_TOKEN", "").strip()
    if env_token:
        return env_token
    if settings.github_token is not None and settings.github_token.get_secret_value().strip():
        return settings.github_token.get_secret_value().strip()
    if session is not None:
        return stored_github_token(session=session, settings=settings)
    from agentforge.db import get_engine, session_scope

    with session_scope(get_engine(settings)) as own:
        return stored_github_token(session=own, settings=settings)


# --- per-repository tokens (``repositories.access_token``) ----------------------------------


def store_repository_token(repository_id: uuid.UUID, token: str | None, *, session: Session,
                           settings: Settings | None = None) -> None:
    """Encrypt and store a repository's own token (None clears it); flushes, no commit."""
    from models.secrets import set_repository_token_ciphertext

    ciphertext = encrypt_token(token.strip(), settings=settings) if token and token.strip() else None
    set_repository_token_ciphertext(repository_id, ciphertext, session=session)


def repository_token(repository_id: uuid.UUID, *, session: Session, settings: Settings | None = None) -> str | None:
    from models.secrets import get_repository_token_ciphertext

    ciphertext = get_repository_token_ciphertext(repository_id, session=session)
    return None if ciphertext is None else decrypt_token(ciphertext, settings=settings)
