"""The catalog reader's batched git reads (one ls-tree with folders, one cat-file --batch per batch)."""

from __future__ import annotations

import pytest

from agentforge.catalogs import objects
from agentforge.catalogs.objects import list_tree, read_objects
from agentforge.errors import GitError
from tests.gitfactory import Symlink


class _PlainMirror:
    """Only what the fallback needs (no list_tree/read_objects of its own): the process-based path."""

    def __init__(self, mirror):
        self.path, self._mirror = mirror.path, mirror

    def tree_id(self, commit, path):
        return self._mirror.tree_id(commit, path)


@pytest.mark.parametrize("plain", [False, True], ids=["mirror", "fallback"])
def test_list_tree_and_read_objects(factory, open_mirror, monkeypatch, plain):
    repo = factory.create("objs", files={"a.md": "alpha\n", "dir/b.json": "{}\n", "dir/sub/empty": "",
                                         "link": Symlink("a.md")})
    mirror = open_mirror(repo)
    reader = _PlainMirror(mirror) if plain else mirror
    commit = repo.commits[-1]
    root, entries = list_tree(reader, commit)
    assert root == repo.git("rev-parse", f"{commit}^{{tree}}")
    by_path = {e.path: e for e in entries}
    assert [e.path for e in entries] == sorted(by_path)
    assert (by_path["dir"].kind, by_path["dir"].sha) == ("tree", repo.git("rev-parse", f"{commit}:dir"))
    assert by_path["dir/sub"].kind == "tree" and by_path["link"].mode == "120000"
    assert (by_path["a.md"].kind, by_path["a.md"].size, by_path["dir"].size) == ("blob", 6, None)
    blobs = [e for e in entries if e.kind == "blob"]
    missing = "0" * 40
    expected = {e.sha: (repo.workdir / e.path).read_bytes() if e.mode != "120000" else b"a.md" for e in blobs}
    assert read_objects(reader, [*expected, missing]) == {**expected, missing: None}
    with pytest.raises(GitError) as info:
        list_tree(reader, "f" * 40)
    assert info.value.code == "GIT_COMMIT_NOT_FOUND"
    if plain:
        # A byte budget splits the work into several cat-file processes; the answer is the same.
        calls: list[int] = []
        real = objects._read_batch
        monkeypatch.setattr(objects, "_read_batch", lambda m, ids: calls.append(len(ids)) or real(m, ids))
        monkeypatch.setattr(objects, "BATCH_BYTES", 4)
        assert read_objects(reader, list(expected), sizes={e.sha: e.size or 0 for e in blobs}) == expected
        assert len(calls) > 1 and sum(calls) == len(expected)
