"""Lock files from real resolutions: determinism, minimal churn, --check, merge conflicts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from agentforge.core.lockfile import has_conflict_markers, parse_lock
from agentforge.errors import AgentForgeError, LockError
from agentforge.services import lock as lock_svc
from tests.lock.conftest import Library


def _lock(root: str, path: Path, **kw: object) -> lock_svc.ResolveOutcome:
    """What the `lock` flow does, minus Prefect: read pins, resolve, write, persist."""
    existing = lock_svc.read_existing_lock(path)
    out = lock_svc.resolve_root(root, pins=existing.pins, previous=existing.lock, **kw)  # type: ignore[arg-type]
    lock_svc.write_lock_file(path, out.text)
    lock_svc.persist_resolution(out.lock, composition_id=out.composition_id, previous=existing.lock)
    return out


def _version(path: Path, name: str) -> str:
    lock = parse_lock(path.read_bytes(), source=str(path))
    return next(p.version for p in lock.packages.values() if p.component == name)


@pytest.fixture()
def chain(lib: Library) -> Library:
    lib.repo("tools", {"app": ("1.0.0", {"b": "^1", "c": "^1"}), "b": "1.0.0", "c": "1.0.0"})
    lib.sync()
    return lib


def test_byte_identical_for_identical_inputs(chain: Library, tmp_path: Path) -> None:
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    _lock("app", one)
    _lock("app", two)
    data = one.read_bytes()
    assert data == two.read_bytes()
    assert data.endswith(b"\n") and b"\r" not in data
    assert data.startswith(b"content_hash: sha256:") and b"lockfile_version: 1\n" in data
    # An unchanged resolution never rewrites the file.
    before = one.stat().st_mtime_ns
    assert lock_svc.write_lock_file(one, lock_svc.resolve_root("app", previous=parse_lock(data, source="x")).text) \
        is False
    assert one.stat().st_mtime_ns == before
    # Checksums follow FORMATS §5 (sha256 over "<hex>  <relpath>\n" lines), not placeholders.
    lock = parse_lock(data, source="one")
    assert all(p.checksum != "sha256:" + "0" * 64 for p in lock.packages.values())


def test_minimal_churn_then_upgrade(chain: Library, tmp_path: Path) -> None:
    path = tmp_path / "forge-lock.yaml"
    _lock("app", path)
    chain.release("tools", {"b": "1.1.0", "c": "1.1.0"}, "v1.1.0")
    chain.sync()
    before = path.read_bytes()
    out = _lock("app", path)
    assert path.read_bytes() == before and out.kept_pins == 3  # newer releases exist, pins kept
    _lock("app", path, upgrade=["c"])  # -P c
    assert (_version(path, "b"), _version(path, "c")) == ("1.0.0", "1.1.0")
    _lock("app", path, upgrade=[])  # --upgrade
    assert (_version(path, "b"), _version(path, "c")) == ("1.1.0", "1.1.0")
    rows = chain.q("SELECT d.name, cd.resolved_version FROM component_dependencies cd "
                   "JOIN components d ON d.id = cd.dependency_id ORDER BY 1")
    assert [tuple(r) for r in rows] == [("b", "1.1.0"), ("c", "1.1.0")]  # no stale 1.0.0 rows


def test_check_reports_checksum_mismatch(chain: Library, tmp_path: Path) -> None:
    path = tmp_path / "forge-lock.yaml"
    _lock("app", path)
    assert lock_svc.check_lock("app", path).ok
    text = path.read_text()
    lock = parse_lock(text, source="x")
    victim = next(p for p in lock.packages.values() if p.component == "c")
    path.write_text(text.replace(victim.checksum, "sha256:" + "a" * 64))
    result = lock_svc.check_lock("app", path)
    assert not result.ok and result.mismatch
    assert "c 1.0.0: checksum" in result.reasons[0] and "differs from the lock" in result.reasons[0]
    with pytest.raises(LockError) as info:
        lock_svc.verify_lock_for_install("app", path, include_dev=False)
    assert info.value.code == "LOCK_STALE"


@pytest.mark.parametrize(("field", "value"), [
    ("dependency_type", "dev"),
    ("constraints", {"<root>": ">=0.1"}),
    ("resolution_path", ["<root>"]),
    ("optional", True),
])
def test_check_reports_edited_resolution_facts(chain: Library, tmp_path: Path, field: str, value: object) -> None:
    """The content hash covers the inputs only: a hand-edited dependency type, constraint,
    resolution path or optional flag used to pass --check (and --frozen)."""
    path = tmp_path / "forge-lock.yaml"
    _lock("app", path)
    text = path.read_text()
    document = yaml.safe_load(text)
    key = next(k for k, p in document["packages"].items() if p["component"] == "b")
    assert document["packages"][key][field] != value
    document["packages"][key][field] = value
    path.write_text(yaml.safe_dump(document, sort_keys=True))
    result = lock_svc.check_lock("app", path)
    assert not result.ok and not result.mismatch, result
    assert any(field in r and "the resolution gives" in r for r in result.reasons), result.reasons
    with pytest.raises(LockError) as info:
        lock_svc.verify_lock_for_install("app", path, include_dev=False)
    assert info.value.code == "LOCK_STALE" and field in info.value.message
    path.write_text(text)
    assert lock_svc.check_lock("app", path).ok


def test_check_keeps_an_old_root_pin_when_a_newer_root_exists(chain: Library, tmp_path: Path) -> None:
    path = tmp_path / "forge-lock.yaml"
    _lock("app", path)
    chain.release("tools", {"app": ("1.1.0", {"b": "^1", "c": "^1"}), "b": "1.0.0", "c": "1.0.0"}, "v1.1.0")
    chain.sync()
    assert lock_svc.check_lock("app", path).ok  # still a true lock of app 1.0.0


def test_check_reports_tree_mismatch_and_stale(chain: Library, tmp_path: Path) -> None:
    path = tmp_path / "forge-lock.yaml"
    _lock("app", path)
    text = path.read_text()
    lock = parse_lock(text, source="x")
    victim = next(p for p in lock.packages.values() if p.component == "b")
    path.write_text(text.replace(f"tree: {victim.tree}", "tree: " + "a1" * 20))
    result = lock_svc.check_lock("app", path)
    assert not result.ok and "has tree" in result.reasons[0]
    # Stale: the inputs differ (here: --dev was not part of the locked inputs).
    _lock("app", path)
    result = lock_svc.check_lock("app", path, include_dev=True)
    assert not result.ok and result.reasons[0].startswith("stale: the inputs changed")


def test_conflict_markers_re_resolved_keeping_agreed_pins(chain: Library, tmp_path: Path) -> None:
    base, ours, theirs = tmp_path / "base.yaml", tmp_path / "ours.yaml", tmp_path / "theirs.yaml"
    _lock("app", base)
    chain.release("tools", {"b": "1.1.0", "c": "1.1.0"}, "v1.1.0")
    chain.sync()
    ours.write_bytes(base.read_bytes())
    _lock("app", ours, upgrade=["c"])  # c 1.1.0, b kept at 1.0.0
    chain.release("tools", {"c": "1.2.0"}, "v1.2.0")
    chain.sync()
    theirs.write_bytes(base.read_bytes())
    _lock("app", theirs, upgrade=["c"])  # c 1.2.0, b kept at 1.0.0
    merged = subprocess.run(["git", "merge-file", "-p", str(ours), str(base), str(theirs)],
                            capture_output=True, check=False).stdout
    path = tmp_path / "forge-lock.yaml"
    path.write_bytes(merged)
    assert has_conflict_markers(merged.decode())
    existing = lock_svc.read_existing_lock(path)
    assert existing.conflicted
    assert {k.rpartition("/")[2] for k in existing.pins} == {"app", "b"}  # both sides agree on these
    _lock("app", path)
    assert not has_conflict_markers(path.read_text())
    # b stays at the agreed 1.0.0 (1.1.0 exists); c, disputed, goes to the best version.
    assert (_version(path, "b"), _version(path, "c")) == ("1.0.0", "1.2.0")
    assert lock_svc.check_lock("app", path).ok


@pytest.mark.parametrize(("content", "needle"), [
    (b"\x00\x01 not yaml: [", "forge-lock.yaml"),
    (b"lockfile_version: 7\nroot: {kind: Tool, name: a, version: 1.0.0}\n", "unsupported lock file version 7"),
    (b"- just\n- a list\n", "expected a mapping"),
])
def test_garbage_lock_is_lock_invalid(chain: Library, tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "forge-lock.yaml"
    path.write_bytes(content)
    with pytest.raises(LockError) as info:
        lock_svc.read_existing_lock(path)
    assert info.value.code == "LOCK_INVALID" and str(path) in info.value.message and needle in info.value.message


def test_bad_commit_hex_is_lock_invalid(chain: Library, tmp_path: Path) -> None:
    path = tmp_path / "forge-lock.yaml"
    _lock("app", path)
    lock = parse_lock(path.read_bytes(), source="x")
    commit = next(iter(lock.packages.values())).commit
    path.write_text(path.read_text().replace(f"commit: {commit}", "commit: XYZ123", 1))
    with pytest.raises(LockError) as info:
        lock_svc.check_lock("app", path)
    assert info.value.code == "LOCK_INVALID" and "commit" in info.value.message and str(path) in info.value.message


def test_relock_fast_path_reproduces_the_resolution_and_steps_aside(chain: Library, tmp_path: Path) -> None:
    import sqlalchemy as sa

    from agentforge.errors import ResolutionError

    path = tmp_path / "forge-lock.yaml"
    _lock("app", path)
    existing = lock_svc.read_existing_lock(path)

    def relock() -> lock_svc.ResolveOutcome:
        return lock_svc.resolve_root("app", pins=existing.pins, previous=existing.lock, previous_text=existing.text)

    fast = relock()
    assert fast.text == existing.text and fast.kept_pins == 3
    full = lock_svc.resolve_root("app", previous=existing.lock)  # no pins: the resolver runs
    assert full.lock == fast.lock
    # A newer root release: the root may move, so the resolver decides (here: app 1.1.0).
    chain.release("tools", {"app": ("1.1.0", {"b": "^1", "c": "^1"}), "b": "1.0.0", "c": "1.0.0"}, "v1.1.0")
    chain.sync()
    moved = relock()
    assert next(p.version for p in moved.lock.packages.values() if p.component == "app") == "1.1.0"
    # A disabled repository is never hidden behind an unchanged lock.
    with chain.engine.begin() as conn:
        conn.execute(sa.text("UPDATE repositories SET is_active = false"))
    with pytest.raises(ResolutionError, match="disabled"):
        relock()


def _cache_dir() -> Path:
    from agentforge.config import get_settings

    return get_settings().home / "cache" / "locks"


def test_lock_over_one_mib_reads_back_and_huge_one_is_refused_unread(chain: Library, tmp_path: Path) -> None:
    """A lock file is generated and grows with the graph: past the 1 MiB document limit it still
    reads (the 2,000-package benchmark lock is 1.3 MiB); past MAX_LOCK_BYTES it is refused by size."""
    from agentforge.core.lockfile import MAX_LOCK_BYTES
    from agentforge.core.yamlio import MAX_DOCUMENT_BYTES

    path = tmp_path / "forge-lock.yaml"
    _lock("app", path)
    padded = path.read_text() + "".join(f"# padding {i:07d} {'x' * 100}\n" for i in range(12_000))
    assert len(padded.encode()) > MAX_DOCUMENT_BYTES
    big = tmp_path / "big-lock.yaml"
    big.write_text(padded)
    assert lock_svc.read_existing_lock(big).lock == lock_svc.read_existing_lock(path).lock
    huge = tmp_path / "huge-lock.yaml"
    with huge.open("wb") as handle:
        handle.truncate(MAX_LOCK_BYTES + 1)  # sparse: never read into memory
    with pytest.raises(LockError) as info:
        lock_svc.read_existing_lock(huge)
    assert str(huge) in info.value.message and "MiB limit" in info.value.message


def test_parsed_lock_cache_is_only_a_cache(chain: Library, tmp_path: Path) -> None:
    from agentforge.core.hashing import sha256_hex
    from agentforge.core.lockfile import load_lock_data

    path = tmp_path / "forge-lock.yaml"
    existing = lock_svc.read_existing_lock(path)
    out = lock_svc.resolve_root("app", pins=existing.pins, previous=existing.lock)
    assert lock_svc.write_lock_file(path, out.text, lock=out.lock)
    data = path.read_bytes()
    entry = _cache_dir() / f"{sha256_hex(data)}.json"
    # What the write remembered is exactly what the YAML reader loads from the file.
    import json

    assert json.loads(entry.read_text()) == load_lock_data(data, str(path))
    from_cache = lock_svc.read_existing_lock(path).lock
    entry.unlink()
    from_yaml = lock_svc.read_existing_lock(path).lock  # a miss reads the file and re-caches it
    assert from_cache == from_yaml == parse_lock(data, source="x") and entry.exists()
    # A corrupt or tampered entry is never trusted: it is dropped and the file is read.
    entry.write_text("{not json")
    assert lock_svc.read_existing_lock(path).lock == from_yaml
    entry.write_text(json.dumps({"lockfile_version": 1}))
    assert lock_svc.read_existing_lock(path).lock == from_yaml
    # An edited file is a different key: the edit is seen, not the cached copy.
    path.write_text(data.decode().replace("lockfile_version: 1", "lockfile_version: 9"))
    with pytest.raises(LockError, match="unsupported lock file version 9"):
        lock_svc.read_existing_lock(path)


@pytest.mark.parametrize(("field", "value"), [("version", "9.9.9"), ("kind", "Prompt")])
def test_edited_version_or_kind_is_a_mismatch(chain: Library, tmp_path: Path, field: str, value: str) -> None:
    """A package's version and kind are facts of its pinned commit, like its tree and checksum."""
    path = tmp_path / "forge-lock.yaml"
    _lock("app", path)
    lock = parse_lock(path.read_bytes(), source="x")
    b = next(p for p in lock.packages.values() if p.component == "b")
    text = path.read_text()
    block_start = text.index("component: b\n")
    before = text[:block_start]
    after = text[block_start:].replace(f"{field}: {getattr(b, field)}\n", f"{field}: {value}\n", 1)
    path.write_text(before + after)
    check = lock_svc.check_lock("app", path)
    assert not check.ok and any(field in r and value in r for r in check.reasons), check.reasons
    with pytest.raises(LockError) as info:
        lock_svc.verify_lock_for_install("app", path, include_dev=False)
    assert field in info.value.message and value in info.value.message


@pytest.mark.parametrize(("odd", "shown"), [("we\nird.txt", "we\\nird.txt'"), ("back\\slash.txt", "back\\slash.txt'"),
                                            ("caf\udce9.txt", "caf\\xe9.txt'"), ("d\udcff/x.txt", "d\\xff'")])
def test_a_file_name_the_checksum_cannot_carry_is_reported_by_sync(lib: Library, tmp_path: Path, odd: str,
                                                                   shown: str) -> None:
    """git allows these names; FORMATS §5's checksum lines cannot hold them (or are UTF-8). The sync
    used to release such a component and `lock` to refuse it later; now the sync reports it, naming
    the component and the file, and skips it (the other components of the repository are kept), so
    `lock` says it is not there instead of failing on a release it offered."""
    from agentforge.services import sync as svc

    lib.repo("odd", {"okc": "1.0.0", "fine": "1.0.0"}, files={f"tools/okc/{odd}": "x\n"})
    plan = svc.plan_sync(None)
    [result] = [svc.sync_repository(i) for i in plan.to_sync]
    assert result.status == "synced"
    [problem] = [p for p in result.problems if "okc" in p]
    assert "tools/okc" in problem and shown in problem and "component skipped" in problem, problem
    assert [n for (n,) in lib.q("SELECT name FROM components ORDER BY name")] == ["fine"]
    path = tmp_path / "forge-lock.yaml"
    _lock("fine", path)  # the rest of the repository locks as before
    with pytest.raises(AgentForgeError) as info:
        _lock("okc", tmp_path / "other-lock.yaml")
    assert info.value.exit_code == 2 and "okc" in info.value.message
    # ...and says why it is not there (it used to say only NOT_FOUND), as `show` does.
    assert "the last sync skipped it" in info.value.message and shown in info.value.message, info.value.message
    from tests.cli.helpers import cli

    res = cli("--json", "show", "okc")
    assert res.code == 2 and "the last sync skipped it" in res.json()["error"]["message"], res.out
    res = cli("--json", "show", "nothing-at-all")
    assert res.code == 2 and "skipped" not in res.json()["error"]["message"], res.out


@pytest.mark.parametrize(("folder", "shown"), [("tools/caf\udce9", "tools/caf\\xe9/component.yaml"),
                                               ("tools/back\\slash", "tools/back\\slash/component.yaml")])
def test_a_component_folder_name_the_database_cannot_carry_fails_only_that_component(
        lib: Library, folder: str, shown: str) -> None:
    """A component folder whose name is not UTF-8 used to crash the whole repository's sync
    (psycopg refused to encode the path); now that component alone is reported and skipped."""
    from agentforge.services import sync as svc
    from tests.lock.conftest import component

    lib.repo("oddf", {"fine": "1.0.0"}, files={f"{folder}/component.yaml": component("weird", "1.0.0", {})})
    plan = svc.plan_sync(None)
    [result] = [svc.sync_repository(i) for i in plan.to_sync]
    assert result.status == "synced", result
    [problem] = [p for p in result.problems if "component skipped" in p]
    assert shown in problem and "cannot be locked or installed" in problem, problem
    assert [n for (n,) in lib.q("SELECT name FROM components ORDER BY name")] == ["fine"]
    [(message,)] = lib.q("SELECT error_message FROM sync_operations")
    assert shown in message


def test_a_name_two_kinds_share_is_reported_and_refused_by_lock_not_mislocked(lib: Library) -> None:
    """FORMATS §1 lets a Tool and a Prompt of one repository share a name, but a lock keys packages
    by repository and name. `lock x` used to fail with LOCK_MISMATCH ("someone edited the lock")
    on a lock it had just made (the two rows overwrote each other); `show x` silently took one."""
    from agentforge.errors import ResolutionError
    from agentforge.services import sync as svc
    from tests.cli.helpers import cli
    from tests.lock.conftest import component

    lib.repo("scan", files={"a/x/component.yaml": component("x", "1.0.0"),
                            "c/y/component.yaml": component("x", "1.0.0", kind="Prompt"),
                            "b/ok/component.yaml": component("ok", "1.0.0")})
    plan = svc.plan_sync(None)
    [result] = [svc.sync_repository(i) for i in plan.to_sync]
    [warning] = [p for p in result.problems if "kinds" in p]
    assert "'x'" in warning and "Prompt at c/y/component.yaml" in warning and "Tool at a/x/component.yaml" in warning
    for root in ("x", "scan/x", "x@1.0.0"):
        with pytest.raises(ResolutionError) as info:
            lock_svc.resolve_root(root)
        assert info.value.code == "AMBIGUOUS_COMPONENT" and info.value.exit_code == 2
        assert "Prompt and a Tool" in info.value.message
    assert lock_svc.resolve_root("ok").lock.packages  # the rest locks
    res = cli("--json", "show", "scan/x")
    assert res.code == 2 and res.json()["error"]["code"] == "AMBIGUOUS_COMPONENT", res.out
    res = cli("--json", "show", "scan/x", "--type", "prompt")
    assert res.code == 0 and res.json()["type"] == "Prompt", res.out + res.err
    res = cli("--json", "show", "x", "--type", "tool")
    assert res.code == 0 and res.json()["type"] == "Tool", res.out + res.err
