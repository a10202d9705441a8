"""kill -9 an install at every step; after a re-run the install root and the database agree.

The install replaces two components (a, b) from 1.0.0 with 1.1.0. After the kill and a re-run
of the same lock: each folder holds exactly the locked files, its ``.forge`` record names the
locked commit, no staging or backup folder is left in the install root, and the database
marks exactly the locked row of each component installed at that folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash.conftest import killed
from tests.crash.driver import INSTALL_POINTS
from tests.lock.conftest import Library


def _lock(lib: Library, path: Path) -> Path:
    from agentforge.services.lock import resolve_root

    path.write_text(resolve_root("a").text, encoding="utf-8")
    return path


def _install(path: Path) -> None:
    from agentforge.core.lockfile import parse_lock
    from agentforge.services.install import install_lock

    install_lock(parse_lock(path.read_bytes(), source=str(path)))


@pytest.mark.parametrize("point", INSTALL_POINTS)
def test_install_killed(lib: Library, home: Path, tmp_path: Path, point: str) -> None:
    import json

    lib.repo("tools", {"a": ("1.0.0", {"b": "^1"}), "b": "1.0.0"}, tag="v1.0.0")
    lib.sync()
    _install(_lock(lib, tmp_path / "v1.yaml"))
    lib.release("tools", {"a": ("1.1.0", {"b": "^1"}), "b": "1.1.0"}, tag="v1.1.0")
    lib.sync()
    lock = _lock(lib, tmp_path / "v2.yaml")
    root = home / "installs"

    killed("install", str(lock), at=point)
    # Whatever the kill left, no folder is a mix of two versions.
    for name in ("a", "b"):
        main = root / name / "main.py"
        if main.exists():
            assert main.read_text() in (f"print({name!r}, '1.0.0')\n", f"print({name!r}, '1.1.0')\n")
    _install(lock)

    commits = {name: c for name, c in lib.q("SELECT name, commit_hash FROM components WHERE version = '1.1.0'")}
    for name in ("a", "b"):
        assert (root / name / "main.py").read_text() == f"print({name!r}, '1.1.0')\n"
        assert sorted(p.name for p in (root / name).iterdir()) == ["component.yaml", "main.py"]
        assert json.loads((root / ".forge" / f"{name}.json").read_text())["commit"] == commits[name]
    leftovers = sorted(p.name for p in root.iterdir() if p.name.startswith((".staging-", ".backup-")))
    assert leftovers == []
    installed = lib.q("SELECT name, commit_hash, install_path FROM components WHERE is_installed ORDER BY name")
    assert installed == [(n, commits[n], str(root / n)) for n in ("a", "b")]
