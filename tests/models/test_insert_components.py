"""``insert_components``: the set-based INSERT sync writes component rows with, one statement
for a few rows and COPY (the statement again when rows are already stored) for many, on a
real server."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from models import Component, ComponentType, Repository, RepoType
from models import repositories as repos_q


def _rows(repo: Repository, n: int, *, commit: str = "b" * 40, version: str = "1.0.0") -> list[dict]:
    return [dict(id=uuid.uuid4(), name=f"c{i:04d}", type=ComponentType.PROMPT, version=version,
                 repository_id=repo.id, repository_url=repo.url, path=f"prompts/c{i:04d}", commit_hash=commit,
                 definition={"kind": "Prompt", "metadata": {"name": f"c{i:04d}"}, "spec": {"body": "x" * 500}},
                 schema=None, metadata_={"name": f"c{i:04d}", "n": i}, tree_hash="c" * 40,
                 release_tags=["v1.0.0"], is_release=True, is_reused_version=False) for i in range(n)]


@pytest.fixture()
def repo(db_session) -> Repository:  # type: ignore[no-untyped-def]
    r = Repository(name=f"r{uuid.uuid4().hex[:8]}", url=f"file:///srv/{uuid.uuid4().hex[:8]}", type=RepoType.MIXED)
    db_session.add(r)
    db_session.flush()
    return r


def _count(session, repo: Repository) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(sa.select(sa.func.count()).select_from(Component).where(Component.repository_id == repo.id))


@pytest.mark.parametrize("n", [1, repos_q.INSERT_CHUNK_ROWS, repos_q.INSERT_CHUNK_ROWS * 3 + 7])
def test_rows_are_written_whole_and_counted(db_session, repo: Repository, n: int) -> None:  # type: ignore[no-untyped-def]
    rows = _rows(repo, n)
    assert repos_q.insert_components(session=db_session, rows=rows) == n
    assert _count(db_session, repo) == n
    last = db_session.get(Component, rows[-1]["id"])
    assert last is not None and last.metadata_ == {"name": f"c{n - 1:04d}", "n": n - 1}
    assert last.definition["spec"]["body"] == "x" * 500
    assert last.release_tags == ["v1.0.0"] and last.is_release and not last.is_reused_version
    # The session is usable after the pipelined path (it hands the connection back in a clean state).
    assert db_session.scalar(sa.text("SELECT 1")) == 1


def test_rows_already_stored_are_skipped_and_not_counted(db_session, repo: Repository) -> None:  # type: ignore[no-untyped-def]
    n = repos_q.INSERT_CHUNK_ROWS * 2 + 3
    first = _rows(repo, n)
    stored = first[5:9] + first[-3:]  # in the first and the last chunk
    assert repos_q.insert_components(session=db_session, rows=stored) == len(stored)
    again = [dict(r, id=uuid.uuid4()) for r in first]  # the same (url, path, commit) under new ids
    assert repos_q.insert_components(session=db_session, rows=again) == n - len(stored)
    assert _count(db_session, repo) == n


def test_a_bad_row_in_a_later_chunk_writes_nothing(engine) -> None:  # type: ignore[no-untyped-def]
    """All chunks are one transaction: a CHECK violation in the last chunk leaves no row of the first."""
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        r = Repository(name=f"r{uuid.uuid4().hex[:8]}", url=f"file:///srv/{uuid.uuid4().hex[:8]}",
                       type=RepoType.MIXED)
        session.add(r)
        session.commit()
        try:
            rows = _rows(r, repos_q.INSERT_CHUNK_ROWS * 2 + 1)
            rows[-1]["version"] = "not-a-version"  # check_version_format
            with pytest.raises(sa.exc.IntegrityError) as info:
                repos_q.insert_components(session=session, rows=rows)
            assert "check_version_format" in str(info.value)
            session.rollback()
            assert _count(session, r) == 0
        finally:
            session.rollback()
            session.execute(sa.delete(Repository).where(Repository.id == r.id))
            session.commit()


@pytest.mark.parametrize("n", [2, repos_q.INSERT_CHUNK_ROWS + 1], ids=["json-statement", "copy"])
def test_definitions_round_trip_exactly_as_json_would_store_them(db_session, repo: Repository, n: int) -> None:  # type: ignore[no-untyped-def]
    """The encoder (orjson, json as the fallback) stores what ``json.dumps`` would: non-ASCII
    text, non-string keys as strings, dates as ISO text, big integers, nested lists; through
    the JSON statement and through COPY (whose text format escapes tabs, newlines, backslashes)."""
    import datetime as dt
    import json

    definition = {"kind": "Prompt", "metadata": {"name": "ünïcode-名前", "tab": "a\tb", "path": "C:\\x\\n"},
                  "spec": {"body": "line\u00a0one\u200b\r\n\\N", 1: "one", "when": dt.date(2026, 12, 4),
                           "list": [1, 2.5, None, True, {"k": "v"}]}}
    big = {"kind": "Prompt", "spec": {"n": 2 ** 70}}
    rows = _rows(repo, n)
    rows[0]["definition"], rows[1]["definition"] = definition, big
    rows[0]["metadata_"] = definition["metadata"]
    assert repos_q.insert_components(session=db_session, rows=rows) == n
    stored = {r.id: r.definition for r in db_session.scalars(sa.select(Component).where(Component.repository_id == repo.id))}
    assert stored[rows[0]["id"]] == json.loads(json.dumps(definition, default=str))
    assert stored[rows[0]["id"]]["spec"]["when"] == "2026-12-04" and stored[rows[0]["id"]]["spec"]["1"] == "one"
    assert stored[rows[1]["id"]]["spec"]["n"] == 2 ** 70
    meta = db_session.scalar(sa.select(Component.metadata_).where(Component.id == rows[0]["id"]))
    assert meta == definition["metadata"]
