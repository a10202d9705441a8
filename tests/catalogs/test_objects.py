"""The mirror's whole-commit reads the catalog reader uses: a listing with folders, blobs by id in a batch."""

from __future__ import annotations

import pytest

from agentforge.errors import GitError
from tests.gitfactory import Symlink


def test_list_tree_and_read_objects(factory, open_mirror):
    repo = factory.create("objs", files={"a.md": "alpha\n", "dir/b.json": "{}\n", "dir/sub/empty": "",
                                         "link": Symlink("a.md")})
    mirror = open_mirror(repo)
    commit = repo.commits[-1]
    root, entries = mirror.list_tree(commit)
    assert root == repo.git("rev-parse", f"{commit}^{{tree}}")
    by_path = {e.path: e for e in entries}
    assert [e.path for e in entries] == sorted(by_path)
    assert (by_path["dir"].kind, by_path["dir"].sha) == ("tree", repo.git("rev-parse", f"{commit}:dir"))
    assert by_path["dir/sub"].kind == "tree" and by_path["link"].mode == "120000"
    assert (by_path["a.md"].kind, by_path["a.md"].size, by_path["dir"].size) == ("blob", 6, None)
    blobs = [e for e in entries if e.kind == "blob"]
    missing = "0" * 40
    expected = {e.sha: (repo.workdir / e.path).read_bytes() if e.mode != "120000" else b"a.md" for e in blobs}
    assert mirror.read_objects([*expected, missing]) == {**expected, missing: None}
    with pytest.raises(GitError) as info:
        mirror.list_tree("f" * 40)
    assert info.value.code == "GIT_COMMIT_NOT_FOUND"
