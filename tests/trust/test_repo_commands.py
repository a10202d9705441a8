"""`repo trust|untrust|disable|enable` and `keys` through the real CLI, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentforge.errors import ResolutionError
from agentforge.services import lock as lock_svc
from tests.cli.helpers import cli
from tests.lock.conftest import Library
from tests.trust.conftest import ssh_fingerprint, ssh_key


def test_disable_enable_trust_untrust_and_keys(lib: Library, tmp_path: Path) -> None:
    lib.repo("tools", {"a": ("1.0.0", {"b": {"version": "^1", "repository": "libs"}})})
    lib.repo("libs", {"b": "1.0.0"})
    lib.sync()
    assert lock_svc.resolve_root("a").lock.packages

    res = cli("repo", "disable", "libs")
    assert res.code == 0 and "disabled" in res.out, res.err
    with pytest.raises(ResolutionError) as info:
        lock_svc.resolve_root("a")
    assert "repository libs" in info.value.message and "disabled" in info.value.message
    res = cli("--json", "sync")
    assert res.code == 0, res.err
    assert "libs" not in [r["name"] for r in res.json() if r["status"] in ("synced", "unchanged")]
    res = cli("lock", "a", "-o", str(tmp_path / "forge-lock.yaml"))
    assert res.code == 2 and "libs" in res.err and "disabled" in res.err
    assert cli("repo", "enable", "libs").code == 0
    assert lock_svc.resolve_root("a").lock.packages

    res = cli("repo", "untrust", "tools")
    assert res.code == 0 and "untrusted" in res.out
    res = cli("lock", "a", "-o", str(tmp_path / "forge-lock.yaml"))
    assert res.code == 2 and "SIGNATURE_REQUIRED" in res.err and "tools/a 1.0.0" in res.err
    assert "repo trust tools" in res.err
    assert cli("repo", "trust", "tools").code == 0
    assert cli("repo", "trust", "nope").code == 2

    key = ssh_key(tmp_path / "keys", "alice")
    res = cli("keys", "add", f"{key}.pub")
    assert res.code == 0 and ssh_fingerprint(key) in res.out
    res = cli("--json", "keys", "ls")
    assert [k["fingerprint"] for k in res.json()] == [ssh_fingerprint(key)]
    res = cli("keys", "add", str(key))  # a private key is refused
    assert res.code == 2 and "private key" in res.err
    assert cli("keys", "rm", ssh_fingerprint(key)).code == 0
    assert cli("--json", "keys", "ls").json() == []
