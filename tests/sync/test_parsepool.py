"""The parse worker a sync uses: same answers as parsing in-process (component documents, and a
share of a large batch of markdown files), used only when worth it, stopped when the sync ends,
and a dead, busy or lying worker costs nothing but speed."""

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


def _ready_worker(*, components: bool = True) -> parsepool._Worker:
    worker = parsepool._worker
    assert worker is not None, "offload started no worker"
    assert worker.ready.wait(60), "the worker never said it was ready"
    if components:
        assert worker.components_ready.wait(60), "the worker never imported the component parser"
    return worker


def _count_requests(monkeypatch: pytest.MonkeyPatch, target: object) -> list[tuple[str, int]]:
    """(operation, items) of every request sent to the worker(s) through ``target``'s ``ask``."""
    sent: list[tuple[str, int]] = []
    real = parsepool._Worker.ask

    def ask(self: parsepool._Worker, operation: str, items: object, **kwargs: object) -> object:
        sent.append((operation, kwargs["count"]))  # type: ignore[arg-type]
        return real(self, operation, items, **kwargs)  # type: ignore[arg-type]

    if isinstance(target, parsepool._Worker):
        monkeypatch.setattr(target, "ask", lambda *a, **k: ask(target, *a, **k))
    else:
        monkeypatch.setattr(parsepool._Worker, "ask", ask)
    return sent


def test_the_worker_answers_as_parsing_here_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTFORGE_PARSE_IN_PROCESS", raising=False)
    expected = parse_here(DOCS)
    assert sum(isinstance(r, str) for r in expected) == 3  # the three bad ones are messages
    with parsepool.offload(parsepool.MIN_REPOSITORIES):
        worker = _ready_worker()
        sent = _count_requests(monkeypatch, worker)
        assert parsepool.parse_components(DOCS) == expected
        assert sent == [("components", len(DOCS))]  # it went to the worker...
        assert parsepool.parse_components(DOCS[:2]) == expected[:2]
        assert sent == [("components", len(DOCS))]  # ...a batch below MIN_BATCH did not
    assert worker.proc.poll() is not None  # stopped with the block
    assert parsepool._worker is None


def test_few_repositories_parse_component_documents_here_and_none_or_off_start_no_worker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTFORGE_PARSE_IN_PROCESS", raising=False)
    with parsepool.offload(parsepool.MIN_REPOSITORIES - 1):
        worker = _ready_worker(components=False)  # for markdown only: no pydantic start-up there
        sent = _count_requests(monkeypatch, worker)
        assert parsepool.parse_components(DOCS) == parse_here(DOCS)
        assert sent == [] and not worker.components_ready.is_set()
    with parsepool.offload(0):
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
    used = _count_requests(monkeypatch, parsepool._Worker)
    with_worker = sync_all()
    assert any(op == "components" and n for op, n in used), "no batch went to the worker"
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
            if worker.components_ready.wait(0.05) or worker.broken:
                break
        assert parsepool.parse_components(DOCS) == expected
        assert parsepool.parse_components(DOCS) == expected
        assert worker.broken
    assert not crashed and "Traceback" not in capfd.readouterr().err


# ---------------------------------------------------------------- markdown files (catalogs)

MARKDOWN = [
    b"---\nname: helper\ndescription: helps: with colons\ntools: [Read, Grep]\n---\nBody\n",
    b"no frontmatter at all\n",
    b"---\nname: open\nnever closed\n",
    b"\xef\xbb\xbf---\r\nname: crlf\r\nargument-hint: [x]\r\n---\r\nwindows body\r\n",
    b"---\nname: [unclosed\n  - : :\n---\nlenient\n",
    b"---\n- a list\n---\nnot a mapping\n",
    b"---\nname: bad\n---\n\xff\xfe not UTF-8",
] * 20  # 140 files, 80 of them with a frontmatter block: over MIN_MARKDOWN


def _markdown_here(items: list[bytes]) -> list[object]:
    from agentforge.core.frontmatter import parse_markdown
    from agentforge.errors import AgentForgeError

    out: list[object] = []
    for data in items:
        try:
            out.append(parse_markdown(data, source="SRC"))
        except AgentForgeError as exc:
            out.append((exc.message, exc.code, exc.hint))
    return out


def test_a_large_markdown_batch_is_shared_with_the_worker_with_the_same_answers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTFORGE_PARSE_IN_PROCESS", raising=False)
    expected = _markdown_here(MARKDOWN)
    blocks = sum(1 for r in expected if getattr(r, "has_frontmatter", False))
    assert blocks == 80 >= parsepool.MIN_MARKDOWN
    assert sum(isinstance(r, tuple) for r in expected) == 20  # the non-UTF-8 file is refused, not raised
    assert any(getattr(r, "lenient", False) for r in expected) and any(getattr(r, "warnings", []) for r in expected)
    with parsepool.offload(1):  # one repository is enough for markdown
        worker = _ready_worker(components=False)
        sent = _count_requests(monkeypatch, worker)
        assert parsepool.parse_markdown_many(MARKDOWN, source="SRC") == expected
        assert sent == [("frontmatter", int(blocks * parsepool.MARKDOWN_WORKER_SHARE))]
        assert parsepool.parse_markdown_many(MARKDOWN[:10], source="SRC") == expected[:10]
        assert len(sent) == 1  # a small batch stays here


def test_markdown_falls_back_here_when_the_worker_is_busy_or_dies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTFORGE_PARSE_IN_PROCESS", raising=False)
    expected = _markdown_here(MARKDOWN)
    with parsepool.offload(1):
        worker = _ready_worker(components=False)
        with worker.lock:  # another thread's request in flight: this one does not wait for it
            assert parsepool.parse_markdown_many(MARKDOWN, source="SRC") == expected
        assert not worker.broken
        worker.proc.kill()
        worker.proc.wait()
        assert parsepool.parse_markdown_many(MARKDOWN, source="SRC") == expected
        assert worker.broken
        assert parsepool.parse_markdown_many(MARKDOWN, source="SRC") == expected


def test_an_error_while_the_worker_works_does_not_leave_its_answer_on_the_pipe(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTFORGE_PARSE_IN_PROCESS", raising=False)
    with parsepool.offload(1):
        worker = _ready_worker(components=False)
        blocks = [(0, ["name: a"])] * 4

        def boom() -> None:
            raise RuntimeError("meanwhile failed")

        with pytest.raises(RuntimeError, match="meanwhile failed"):
            worker.ask("frontmatter", ("SRC", blocks), count=4, meanwhile=boom)
        # The answer to that request was read off: the next one gets its own.
        answer = worker.ask("frontmatter", ("SRC", blocks[:1]), count=1)
        assert answer is not None and len(answer) == 1 and answer[0][0] == {"name": "a"}
        assert not worker.broken
