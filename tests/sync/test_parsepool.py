"""The parse worker a sync of many repositories uses: same answers as parsing in-process, started
only when worth it, stopped when the sync ends, and a dead worker costs nothing but speed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from agentforge import parsepool
from agentforge.core.documents import parse_components as parse_here
from tests.sync.conftest import component_yaml, q, tools_files

DOCS = [
    (component_yaml(f"tool-{i}", f"1.{i}.0").encode(), f"tools/tool-{i}/component.yaml@v1") for i in range(10)
] + [
    (b"apiVersion: forge.dev/v1\nkind: Tool\nmetadata: {name: Bad_Name, version: 1.0.0}\n", "bad/component.yaml@v1"),
    (b"kind: [unclosed\n", "broken/component.yaml@v1"),
    (b"apiVersion: forge.dev/v9\nkind: Tool\nmetadata: {name: x, version: 1.0.0}\n", "api/component.yaml@v1"),
]


def _ready_worker() -> parsepool._Worker:
    worker = parsepool._worker
    assert worker is not None, "offload started no worker"
    assert worker.ready.wait(60), "the worker never said it was ready"
    return worker


def test_the_worker_answers_as_parsing_here_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTFORGE_PARSE_IN_PROCESS", raising=False)
    expected = parse_here(DOCS)
    assert sum(isinstance(r, str) for r in expected) == 3  # the three bad ones are messages
    with parsepool.offload(parsepool.MIN_REPOSITORIES):
        worker = _ready_worker()
        sent: list[int] = []
        real = worker.parse
        monkeypatch.setattr(worker, "parse", lambda items: sent.append(len(items)) or real(items))
        assert parsepool.parse_components(DOCS) == expected
        assert sent == [len(DOCS)]  # it went to the worker...
        assert parsepool.parse_components(DOCS[:2]) == expected[:2]
        assert sent == [len(DOCS)]  # ...a batch below MIN_BATCH did not
    assert worker.proc.poll() is not None  # stopped with the block
    assert parsepool._worker is None


def test_no_worker_for_a_few_repositories_or_when_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    with parsepool.offload(parsepool.MIN_REPOSITORIES - 1):
        assert parsepool._worker is None
    monkeypatch.setenv("AGENTFORGE_PARSE_IN_PROCESS", "1")
    with parsepool.offload(50):
        assert parsepool._worker is None
        assert parsepool.parse_components(DOCS) == parse_here(DOCS)


def test_nested_blocks_share_one_worker_until_the_outermost_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTFORGE_PARSE_IN_PROCESS", raising=False)
    with parsepool.offload(10):
        outer = _ready_worker()
        with parsepool.offload(10):
            assert parsepool._worker is outer
        assert outer.proc.poll() is None and parsepool._worker is outer
    assert outer.proc.poll() is not None


def test_a_dead_worker_falls_back_to_parsing_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTFORGE_PARSE_IN_PROCESS", raising=False)
    expected = parse_here(DOCS)
    with parsepool.offload(10):
        worker = _ready_worker()
        worker.proc.kill()
        worker.proc.wait()
        assert parsepool.parse_components(DOCS) == expected
        assert worker.broken
        assert parsepool.parse_components(DOCS) == expected  # and stays on this side
    assert parsepool._worker is None


def _stored(engine: sa.Engine) -> list[tuple[object, ...]]:
    return [tuple(r) for r in q(engine, "SELECT r.name, c.name, c.version, c.commit_hash, c.definition, c.schema, "
                                        "c.metadata, c.is_release FROM components c JOIN repositories r "
                                        "ON r.id = c.repository_id ORDER BY 1, 2, 4")]


def test_a_sync_stores_the_same_rows_with_or_without_the_worker(env, factory, register,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from agentforge.services import sync as svc

    for i in range(parsepool.MIN_REPOSITORIES):
        handle = factory.create(f"r{i}", files=tools_files([f"a{j}" for j in range(parsepool.MIN_BATCH + 2)]),
                                tag="v1.0.0")
        handle.commit(tools_files([f"a{j}" for j in range(parsepool.MIN_BATCH + 2)], "1.1.0"), tags=["v1.1.0"])
        register(handle)

    def sync_all() -> list[tuple[object, ...]]:
        plan = svc.check_and_record(None)
        with parsepool.offload(len(plan.to_sync)):
            if parsepool._worker is not None:
                _ready_worker()
            assert {svc.sync_repository(i, remote=plan.remote.get(i)).status for i in plan.to_sync} == {"synced"}
        rows = _stored(env)
        with env.begin() as conn:
            conn.execute(sa.text("DELETE FROM components"))
            conn.execute(sa.text("UPDATE repositories SET synced_refs = NULL, sync_status = 'NEVER_SYNCED'"))
        return rows

    monkeypatch.delenv("AGENTFORGE_PARSE_IN_PROCESS", raising=False)
    used: list[int] = []
    real = parsepool._Worker.parse
    monkeypatch.setattr(parsepool._Worker, "parse", lambda self, items: used.append(len(items)) or real(self, items))
    with_worker = sync_all()
    assert used, "no batch went to the worker"
    monkeypatch.setenv("AGENTFORGE_PARSE_IN_PROCESS", "1")
    in_process = sync_all()
    assert len(with_worker) == parsepool.MIN_REPOSITORIES * 2 * (parsepool.MIN_BATCH + 2)
    assert with_worker == in_process
    assert parsepool._worker is None


@pytest.mark.parametrize("script", [
    "import sys; sys.stdout.write('Usage: something else entirely\\n' * 50)",  # not our worker at all
    "from agentforge.parseworker import read_frame, write_frame; import sys\n"
    "write_frame(sys.stdout.buffer, 'ready')\n"
    "while True: read_frame(sys.stdin.buffer); write_frame(sys.stdout.buffer, [])",  # answers the wrong length
], ids=["garbage", "wrong-answer"])
def test_a_worker_that_talks_nonsense_is_not_believed(script: str, monkeypatch: pytest.MonkeyPatch,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    import sys
    import threading

    monkeypatch.delenv("AGENTFORGE_PARSE_IN_PROCESS", raising=False)
    monkeypatch.setattr(parsepool, "WORKER_COMMAND", (sys.executable, "-c", script))
    crashed: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))
    expected = parse_here(DOCS)
    with parsepool.offload(10):
        worker = parsepool._worker
        assert worker is not None
        for _ in range(200):  # the ready thread decides quickly either way
            if worker.ready.is_set() or worker.broken:
                break
            worker.ready.wait(0.05)
        assert parsepool.parse_components(DOCS) == expected
        assert parsepool.parse_components(DOCS) == expected
        assert worker.broken
    assert not crashed and "Traceback" not in capfd.readouterr().err
