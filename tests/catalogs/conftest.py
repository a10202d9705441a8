"""Helpers: real repositories from tests/gitfactory.py, read through a real RepositoryMirror."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentforge.gitops import RepositoryMirror
from tests.gitfactory import GitRepoFactory, RepoHandle


@pytest.fixture
def factory(tmp_path: Path) -> GitRepoFactory:
    return GitRepoFactory(tmp_path / "git")


@pytest.fixture
def open_mirror(tmp_path: Path) -> Iterator[Callable[[RepoHandle], RepositoryMirror]]:
    opened: list[RepositoryMirror] = []

    def _open(handle: RepoHandle) -> RepositoryMirror:
        mirror = RepositoryMirror(tmp_path / "mirrors" / handle.name, handle.url)
        mirror.ensure()
        mirror.fetch()
        opened.append(mirror)
        return mirror

    yield _open
    for mirror in opened:
        mirror.close()


def js(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


def md(front: str | None, body: str = "Body text.\n") -> str:
    return body if front is None else f"---\n{front}---\n{body}"
