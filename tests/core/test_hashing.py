"""Checksums exactly as FORMATS.md §5 spells them, recomputed independently here."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from agentforge.core.hashing import component_checksum, manifest_hash, sha256_hex
from agentforge.core.yamlio import canonical_json
from agentforge.errors import LockError


def test_sha256_hex() -> None:
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_component_checksum_matches_the_written_recipe() -> None:
    files = [("src/main.py", b"print('hi')\n"), ("component.yaml", b"kind: Tool\n"), ("README.md", b"")]
    lines = "".join(f"{hashlib.sha256(content).hexdigest()}  {path}\n" for path, content in sorted(files))
    expected = "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
    assert component_checksum(files) == expected
    assert component_checksum(reversed(files)) == expected  # order of input does not matter


def test_component_checksum_equals_sha256sum_of_a_checkout(tmp_path: Path) -> None:
    # Anyone can recompute it with coreutils: sha256sum over the sorted file list, then sha256.
    (tmp_path / "b").mkdir()
    (tmp_path / "component.yaml").write_bytes(b"apiVersion: forge.dev/v1\n")
    (tmp_path / "b" / "x.txt").write_bytes("é\n".encode())
    rels = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    listing = subprocess.run(
        ["sha256sum", "--", *rels], cwd=tmp_path, check=True, capture_output=True, env={"LC_ALL": "C"}
    ).stdout
    files = [(rel, (tmp_path / rel).read_bytes()) for rel in rels]
    assert component_checksum(files) == "sha256:" + hashlib.sha256(listing).hexdigest()


def test_content_and_path_both_count() -> None:
    base = component_checksum([("a", b"1")])
    assert component_checksum([("a", b"2")]) != base
    assert component_checksum([("b", b"1")]) != base
    assert component_checksum([]) == "sha256:" + hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("files", [[("a\nb", b"")], [("a\\b", b"")], [("", b"")], [("a", b"1"), ("a", b"2")],
                                   [("caf\udce9", b"")]])
def test_ambiguous_paths_are_refused(files: list[tuple[str, bytes]]) -> None:
    with pytest.raises(LockError) as info:
        component_checksum(files)
    assert info.value.code == "CHECKSUM_PATH_UNSUPPORTED" and info.value.exit_code == 2


def test_manifest_hash_ignores_key_order() -> None:
    assert manifest_hash({"a": 1, "b": [1, 2]}) == manifest_hash({"b": [1, 2], "a": 1})
    assert manifest_hash({"a": 1}) == hashlib.sha256(canonical_json({"a": 1}).encode()).hexdigest()
    assert manifest_hash({"a": 1}) != manifest_hash({"a": 2})
