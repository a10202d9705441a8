"""Fixtures for signed-release tests: the lock tests' Library, and real signing keys."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.gitfactory import GitRepoFactory
from tests.lock.conftest import Library


@pytest.fixture()
def lib(clean_db: sa.Engine, home: Path, tmp_path: Path) -> Iterator[Library]:
    yield Library(GitRepoFactory(tmp_path / "git"), clean_db)


def ssh_key(folder: Path, name: str) -> Path:
    """A fresh ed25519 signing key (no passphrase); returns the private key path (``.pub`` beside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@example.invalid",
                    "-f", str(path)], check=True, capture_output=True)
    return path


def ssh_fingerprint(key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-f", f"{key}.pub"], check=True, capture_output=True, text=True)
    return out.stdout.split()[1]


needs_gpg = pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed on this machine")
