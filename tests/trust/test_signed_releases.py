"""Signed releases with real keys: SSH (ssh-keygen) always, GPG when installed.

An untrusted repository's release is usable only when its tag (or, tagless, its commit) is
signed by an allowed key; lock refuses otherwise, install re-checks, the lock records the key.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from agentforge.db import get_engine, session_scope
from agentforge.services import lock as lock_svc
from agentforge.services import trust
from agentforge.services.install import install_lock
from agentforge.services.settings import current_user_id, set_value
from models import settings as settings_q
from tests.gitfactory import RepoHandle
from tests.lock.conftest import Library, files_for
from tests.trust.conftest import needs_gpg, ssh_fingerprint, ssh_key


def _untrust(name: str) -> None:
    with session_scope(get_engine()) as session:
        from models import repositories as repos_q

        url = repos_q.get_repository(session=session, name=name).url
        settings_q.set_trusted(session=session, user_id=current_user_id(), url=url, trusted=False)


def _ssh_tag(handle: RepoHandle, tag: str, key: Path, *, force: bool = False) -> None:
    handle.git("-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "tag", *(["-f"] if force else []),
               "-s", "-m", f"release {tag}", tag)
    handle.git("push", "-q", "--force", "origin", f"refs/tags/{tag}:refs/tags/{tag}")


def _repo(lib: Library, name: str = "tools") -> RepoHandle:
    handle = lib.repo(name, {"a": "1.0.0"}, tag=None)
    return handle


def test_repo_add_counts_as_trusted_and_unsigned_is_accepted(lib: Library) -> None:
    _repo(lib)
    lib.sync()
    out = lock_svc.resolve_root("a")
    assert out.lock.packages and all(p.verified is None for p in out.lock.packages.values())


def test_unsigned_release_of_untrusted_repository_is_refused_by_lock(lib: Library, tmp_path: Path) -> None:
    handle = _repo(lib)
    handle.tag("v1.0.0", annotated=True)  # annotated but not signed
    lib.sync()
    _untrust("tools")
    with pytest.raises(trust.SignatureRefused) as info:
        lock_svc.resolve_root("a")
    err = info.value
    assert err.code == "SIGNATURE_REQUIRED" and "tools/a 1.0.0" in err.message and "tag v1.0.0" in err.message
    assert "repo trust tools" in (err.hint or "") and "keys add" in (err.hint or "")
    # The release is still synced and listed.
    assert lib.q("SELECT count(*) FROM components WHERE name = 'a'")[0][0] >= 1
    # allow_unsigned_components lets it through, unverified.
    with session_scope(get_engine()) as session:
        set_value("allow_unsigned_components", "true", session=session)
    assert lock_svc.resolve_root("a").lock.packages


def test_ssh_signed_tag_by_allowed_key_is_locked_with_its_fingerprint(lib: Library, tmp_path: Path) -> None:
    key = ssh_key(tmp_path / "keys", "alice")
    handle = _repo(lib)
    _ssh_tag(handle, "v1.0.0", key)
    lib.sync()
    _untrust("tools")
    with pytest.raises(trust.SignatureRefused, match="not allowed"):
        lock_svc.resolve_root("a")  # signed, but by a key nobody allowed yet
    added = trust.add_key_file(Path(f"{key}.pub"))
    assert [k.fingerprint for k in added] == [ssh_fingerprint(key)]
    out = lock_svc.resolve_root("a")
    [pkg] = out.lock.packages.values()
    assert pkg.verified is True and pkg.signing_key == ssh_fingerprint(key)
    assert f"signing_key: {ssh_fingerprint(key)}" in out.text

    # install re-checks: with the key removed, the same lock is refused and nothing is installed.
    target = tmp_path / "installs"
    install_lock(out.lock, target=target)
    trust.remove_key(ssh_fingerprint(key))
    with pytest.raises(trust.SignatureRefused):
        install_lock(out.lock, target=tmp_path / "other")
    assert not (tmp_path / "other" / "a").exists()


def test_signed_by_unknown_key_is_refused(lib: Library, tmp_path: Path) -> None:
    allowed, stranger = ssh_key(tmp_path / "keys", "alice"), ssh_key(tmp_path / "keys", "mallory")
    trust.add_key_file(Path(f"{allowed}.pub"))
    handle = _repo(lib)
    _ssh_tag(handle, "v1.0.0", stranger)
    lib.sync()
    _untrust("tools")
    with pytest.raises(trust.SignatureRefused) as info:
        lock_svc.resolve_root("a")
    assert "not allowed" in info.value.message and ssh_fingerprint(stranger) in info.value.message


def test_tag_resigned_by_another_key_after_a_move_is_refused(lib: Library, tmp_path: Path) -> None:
    alice, mallory = ssh_key(tmp_path / "keys", "alice"), ssh_key(tmp_path / "keys", "mallory")
    trust.add_key_file(Path(f"{alice}.pub"))
    handle = _repo(lib)
    _ssh_tag(handle, "v1.0.0", alice)
    lib.sync()
    _untrust("tools")
    [pkg] = lock_svc.resolve_root("a").lock.packages.values()
    assert pkg.signing_key == ssh_fingerprint(alice)
    # Someone moves the tag to a new commit, re-signed by another key, and force-pushes it.
    handle.commit(files={"tools/a/main.py": "print('changed')\n"})
    _ssh_tag(handle, "v1.0.0", mallory, force=True)
    lib.sync()
    # The sync's tag ledger holds the moved tag back; accepting the move does not make it usable:
    # the new tag's signature is by a key nobody allowed.
    from models import repositories as repos_q

    with session_scope(get_engine()) as session:
        repo = repos_q.get_repository(session=session, name="tools")
        repos_q.accept_tag(session=session, repository_id=repo.id, tag="v1.0.0")
    lib.sync()
    with pytest.raises(trust.SignatureRefused) as info:
        lock_svc.resolve_root("a")
    assert "tag v1.0.0" in info.value.message and ssh_fingerprint(mallory) in info.value.message
    # Allowing that key is a deliberate act: then the moved release is accepted, with the new key recorded.
    trust.add_key_file(Path(f"{mallory}.pub"))
    [pkg] = lock_svc.resolve_root("a").lock.packages.values()
    assert pkg.signing_key == ssh_fingerprint(mallory) and pkg.commit == handle.commits[-1]


def test_tag_moved_to_another_commit_does_not_lend_its_signature(lib: Library, tmp_path: Path) -> None:
    alice = ssh_key(tmp_path / "keys", "alice")
    trust.add_key_file(Path(f"{alice}.pub"))
    handle = _repo(lib)
    first = handle.commits[-1]
    _ssh_tag(handle, "v1.0.0", alice)
    lib.sync()
    _untrust("tools")
    handle.commit(files=files_for({"a": "1.0.0"}) | {"tools/a/extra.txt": "moved\n"})
    _ssh_tag(handle, "v1.0.0", alice, force=True)  # the tag now names another commit
    lib.sync()
    # The first commit's release tag no longer points at it: verify_release says so.
    mirror = next((Path(os.environ["AGENTFORGE_HOME"]) / "mirrors").glob("*.git"))
    result = trust.verify_release(mirror, first, ("v1.0.0",))
    assert not result.verified and "no longer points" in result.reason


def test_tagless_repository_needs_a_signed_commit(lib: Library, tmp_path: Path) -> None:
    alice = ssh_key(tmp_path / "keys", "alice")
    trust.add_key_file(Path(f"{alice}.pub"))
    handle = lib.repo("tools", {"a": "1.0.0"}, tag=None)
    lib.sync()
    _untrust("tools")
    with pytest.raises(trust.SignatureRefused, match="commit"):
        lock_svc.resolve_root("a")
    handle.git("-c", "gpg.format=ssh", "-c", f"user.signingkey={alice}", "commit", "-q", "--allow-empty",
               "-S", "-m", "signed release")
    handle.push()
    lib.sync()
    [pkg] = lock_svc.resolve_root("a").lock.packages.values()
    assert pkg.verified is True and pkg.signing_key == ssh_fingerprint(alice)


@needs_gpg
def test_gpg_signed_tag(lib: Library, tmp_path: Path) -> None:
    gnupg = tmp_path / "signer-gnupg"
    gnupg.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(gnupg)}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Rel Eng <rel@example.invalid>",
                    "ed25519", "sign", "never"], env=env, check=True, capture_output=True)
    listing = subprocess.run(["gpg", "--with-colons", "--fingerprint", "--list-keys"], env=env, check=True,
                             capture_output=True, text=True).stdout
    fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))
    public = tmp_path / "rel.asc"
    public.write_bytes(subprocess.run(["gpg", "--armor", "--export", fpr], env=env, check=True,
                                      capture_output=True).stdout)
    handle = _repo(lib)
    subprocess.run(["git", "-c", f"user.signingkey={fpr}", "tag", "-s", "-m", "release", "v1.0.0"],
                   cwd=handle.workdir, env={**handle.factory.base_env, "GNUPGHOME": str(gnupg)},
                   check=True, capture_output=True)
    handle.git("push", "-q", "origin", "refs/tags/v1.0.0")
    lib.sync()
    _untrust("tools")
    with pytest.raises(trust.SignatureRefused):
        lock_svc.resolve_root("a")
    [key] = trust.add_key_file(public)
    assert key.kind == "gpg" and key.fingerprint == fpr
    assert fpr in [k.fingerprint for k in trust.list_keys()]
    [pkg] = lock_svc.resolve_root("a").lock.packages.values()
    assert pkg.verified is True and pkg.signing_key == fpr
