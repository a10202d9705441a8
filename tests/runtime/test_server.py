"""The instance ASGI app, in process: health, composition view, prompts, agents, metrics.

The OpenAI-compatible path is exercised against a tiny chat-completions server started on
127.0.0.1 by the test; PostgresMetricsSink against a throwaway database.
"""

from __future__ import annotations

import json
import threading
import uuid
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    # starlette 1.x warns that its TestClient will move to httpx2; httpx is what we have.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from agentforge.errors import ConfigError
from agentforge.runtime.server import (
    LoadedComposition,
    MetricsBatch,
    PostgresMetricsSink,
    create_app,
    load_bundle,
    main,
    mask_env_refs,
    resolve_env_refs,
)

KEY = "sk-test-0123456789abcdef"


class RecordingSink:
    """Collects flushed batches in memory (the sink protocol's simplest implementation)."""

    def __init__(self) -> None:
        self.batches: list[MetricsBatch] = []
        self.closed = False

    def flush(self, batch: MetricsBatch) -> None:
        self.batches.append(batch)

    def close(self) -> None:
        self.closed = True

    @property
    def total(self) -> MetricsBatch:
        out = MetricsBatch()
        for batch in self.batches:
            out = out + batch
        return out


class FakeChat:
    """A chat-completions endpoint: records requests, answers with a canned reply or an error."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_with: int | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(
                    {"path": self.path, "authorization": self.headers.get("Authorization"), "body": body}
                )
                if fake.fail_with:
                    # A careless upstream echoing the caller's key back must not leak it.
                    payload = {"error": {"message": f"bad key {KEY}"}}
                    status = fake.fail_with
                else:
                    payload = {"choices": [{"message": {"role": "assistant", "content": "Hi from fake"}}]}
                    status = 200
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_chat() -> Iterator[FakeChat]:
    fake = FakeChat()
    yield fake
    fake.close()


@pytest.fixture
def bundle(tmp_path: Path, make_bundle: Any) -> Path:
    return make_bundle(tmp_path / "bundle")  # type: ignore[no-any-return]


def loaded_from(bundle: Path, **environ: str) -> LoadedComposition:
    return load_bundle(bundle, environ)


# -- ${ENV} ------------------------------------------------------------------------------


def test_env_refs_resolve_with_defaults() -> None:
    value = {"a": "${X}", "b": ["pre-${Y:-dflt}-post"], "c": "${Z:-}", "n": 3}
    assert resolve_env_refs(value, {"X": "1"}) == {"a": "1", "b": ["pre-dflt-post"], "c": "", "n": 3}


def test_missing_env_refs_are_all_named() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_env_refs({"llm": {"url": "${A}", "key": "${B}"}}, {})
    assert info.value.code == "ENV_VAR_MISSING"
    assert "A (referenced at settings.llm.url)" in info.value.message
    assert "B (referenced at settings.llm.key)" in info.value.message


def test_mask_hides_references_and_secret_keys() -> None:
    masked = mask_env_refs({"url": "http://${HOST}/v1", "api_key": "literal", "api_key_env": "OPENAI_API_KEY"})
    assert masked == {"url": "http://***/v1", "api_key": "***", "api_key_env": "OPENAI_API_KEY"}


def test_missing_env_in_a_component_spec_fails_the_load(tmp_path: Path, make_bundle: Any, samples: Any) -> None:
    components = samples.components()
    components["sales-agent"]["spec"]["llm"]["base_url"] = "${SALES_LLM_URL}"
    bundle = make_bundle(tmp_path / "b", components=components)
    with pytest.raises(ConfigError) as info:
        loaded_from(bundle)
    assert "SALES_LLM_URL" in info.value.message
    assert "components.sales-agent.spec.llm.base_url" in info.value.message
    assert "${SALES_LLM_URL}" in (bundle / "resolved.json").read_text()  # never written back


def test_prompt_text_is_not_env_expanded(tmp_path: Path, make_bundle: Any, samples: Any) -> None:
    components = samples.components()
    components["greeting"]["spec"]["template"] = "echo ${HOME} {{ name }}"
    loaded = loaded_from(make_bundle(tmp_path / "b", components=components))
    assert loaded.prompts["greeting"].text == "echo ${HOME} {{ name }}"


def test_main_exits_nonzero_on_missing_env(tmp_path: Path, make_bundle: Any, samples: Any, capsys: Any) -> None:
    settings = samples.settings()
    settings["llm"]["api_key"] = "${DEFINITELY_NOT_SET_4711}"
    bundle = make_bundle(tmp_path / "b", settings=settings)
    assert main(["--bundle", str(bundle), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "ENV_VAR_MISSING" in err and "DEFINITELY_NOT_SET_4711" in err


# -- bundle --------------------------------------------------------------------------------


def test_template_file_must_stay_inside_its_folder(tmp_path: Path, make_bundle: Any, samples: Any) -> None:
    components = samples.components()
    components["sales-system"]["spec"]["template_file"] = "../../resolved.json"
    bundle = make_bundle(tmp_path / "b", components=components)
    with pytest.raises(ConfigError, match="leaves"):
        loaded_from(bundle)


def test_missing_template_file(tmp_path: Path, make_bundle: Any) -> None:
    bundle = make_bundle(tmp_path / "b", files={})
    with pytest.raises(ConfigError, match=r"system\.md"):
        loaded_from(bundle)


def test_missing_resolved_json(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"resolved\.json"):
        loaded_from(tmp_path)


# -- HTTP ------------------------------------------------------------------------------


def test_ready_only_while_the_app_runs(bundle: Path) -> None:
    app = create_app(loaded_from(bundle), sink=RecordingSink())
    outside = TestClient(app)  # no lifespan: not started
    assert outside.get("/health/ready").status_code == 503
    assert outside.get("/health/live").status_code == 200
    with TestClient(app) as client:
        assert client.get("/health/ready").json()["status"] == "ready"
        assert client.get("/ready").status_code == 200  # the path from deployment.health_checks
        assert client.get("/health/live").status_code == 200


def test_composition_view_masks_env_values(bundle: Path) -> None:
    loaded = loaded_from(bundle, SALES_API_KEY="top-secret-value")
    assert loaded.settings["llm"]["api_key"] == "top-secret-value"
    with TestClient(create_app(loaded, sink=RecordingSink())) as client:
        response = client.get("/v1/composition")
    assert response.status_code == 200
    assert "top-secret-value" not in response.text
    body = response.json()
    assert body["composition"]["name"] == "sales-stack"
    assert body["settings"]["llm"]["api_key"] == "***"
    assert body["components"]["crm-lookup"]["spec"]["config"] == {"timeout": 45}
    assert body["components"]["sales-system"]["role"] == "system"
    assert "top-secret-value" not in repr(loaded)


def test_render_prompt(bundle: Path) -> None:
    with TestClient(create_app(loaded_from(bundle), sink=RecordingSink())) as client:
        ok = client.post("/v1/prompts/greeting/render", json={"variables": {"name": "Ann", "limit": 9}})
        assert ok.status_code == 200
        assert ok.json() == {"text": "Hello Ann, tone=formal, limit=9"}
        system = client.post("/v1/prompts/sales-system/render", json={})
        assert system.json()["text"] == "You are the sales assistant of Acme."

        missing = client.post("/v1/prompts/greeting/render", json={"variables": {}})
        assert missing.status_code == 422
        assert missing.json()["error"]["code"] == "PROMPT_VARIABLE_INVALID"
        assert missing.json()["error"]["variable"] == "name"

        bad_enum = client.post("/v1/prompts/greeting/render", json={"variables": {"name": "A", "tone": "rude"}})
        assert bad_enum.status_code == 422 and bad_enum.json()["error"]["variable"] == "tone"
        bad_type = client.post("/v1/prompts/greeting/render", json={"variables": {"name": "A", "limit": True}})
        assert bad_type.status_code == 422 and bad_type.json()["error"]["variable"] == "limit"

        assert client.post("/v1/prompts/nope/render", json={}).status_code == 404
        assert client.post("/v1/prompts/greeting/render", content=b"{not json").status_code == 400
        assert client.post("/v1/prompts/greeting/render", json={"variables": [1]}).status_code == 422


def test_request_bodies_over_the_limit_are_refused(bundle: Path) -> None:
    """413 before the body is read when Content-Length says so, and while reading a chunked body."""
    from agentforge.runtime.server import MAX_REQUEST_BYTES

    big = b'{"variables": {"name": "' + b"x" * MAX_REQUEST_BYTES + b'"}}'
    with TestClient(create_app(loaded_from(bundle), sink=RecordingSink())) as client:
        declared = client.post("/v1/prompts/greeting/render", content=big)
        assert declared.status_code == 413 and declared.json()["error"]["code"] == "REQUEST_TOO_LARGE"

        def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
            for start in range(0, len(big), 65536):
                yield big[start:start + 65536]

        streamed = client.post("/v1/prompts/greeting/render", content=chunks())
        assert streamed.status_code == 413
        just_under = client.post("/v1/prompts/greeting/render",
                                 json={"variables": {"name": "x" * (MAX_REQUEST_BYTES - 100)}})
        assert just_under.status_code == 200


def test_invoke_echo_agent_builds_messages_from_its_prompts(bundle: Path) -> None:
    with TestClient(create_app(loaded_from(bundle), sink=RecordingSink())) as client:
        response = client.post(
            "/v1/agents/sales-agent/invoke",
            json={"input": "What is on sale?", "variables": {"name": "Bo", "company": "Globex"}},
        )
        assert response.status_code == 200
        body = response.json()
        assert body["output"] == "echo(small-model): What is on sale?"
        assert body["messages"] == [
            # sales-system is listed second but has the composition role `system`: it goes first.
            {"role": "system", "content": "You are the sales assistant of Globex."},
            {"role": "user", "content": "Hello Bo, tone=formal, limit=3"},
            {"role": "user", "content": "What is on sale?"},
        ]
        invalid = client.post("/v1/agents/sales-agent/invoke", json={"input": "x"})
        assert invalid.status_code == 422 and invalid.json()["error"]["variable"] == "name"
        assert client.post("/v1/agents/sales-agent/invoke", json={"input": 3}).status_code == 422
        assert client.post("/v1/agents/ghost/invoke", json={"input": "x"}).status_code == 404


def remote_bundle(tmp_path: Path, make_bundle: Any, samples: Any) -> Path:
    components = samples.components()
    components["remote-agent"] = {
        **components["sales-agent"],
        "spec": {
            "llm": {"provider": "openai", "model": "gpt-test", "temperature": 0.2, "api_key_env": "FAKE_LLM_KEY"},
            "prompts": [{"component": "sales-system"}],
        },
    }
    settings = samples.settings()
    settings["llm"] = {"base_url": "${FAKE_LLM_URL}"}
    return make_bundle(tmp_path / "remote", components=components, settings=settings)  # type: ignore[no-any-return]


def test_invoke_openai_compatible(tmp_path: Path, make_bundle: Any, samples: Any, fake_chat: FakeChat) -> None:
    loaded = loaded_from(remote_bundle(tmp_path, make_bundle, samples), FAKE_LLM_URL=fake_chat.url, FAKE_LLM_KEY=KEY)
    with TestClient(create_app(loaded, sink=RecordingSink())) as client:
        response = client.post("/v1/agents/remote-agent/invoke", json={"input": "ping"})
    assert response.status_code == 200, response.text
    assert response.json()["output"] == "Hi from fake"
    [sent] = fake_chat.requests
    assert sent["path"] == "/v1/chat/completions"
    assert sent["authorization"] == f"Bearer {KEY}"
    assert sent["body"]["model"] == "gpt-test"
    assert sent["body"]["temperature"] == 0.2
    assert sent["body"]["messages"] == [
        {"role": "system", "content": "You are the sales assistant of Acme."},
        {"role": "user", "content": "ping"},
    ]


def test_upstream_failure_is_502_without_the_key(
    tmp_path: Path, make_bundle: Any, samples: Any, fake_chat: FakeChat
) -> None:
    fake_chat.fail_with = 401
    loaded = loaded_from(remote_bundle(tmp_path, make_bundle, samples), FAKE_LLM_URL=fake_chat.url, FAKE_LLM_KEY=KEY)
    with TestClient(create_app(loaded, sink=RecordingSink())) as client:
        response = client.post("/v1/agents/remote-agent/invoke", json={"input": "ping"})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "LLM_UPSTREAM_FAILED"
    assert "401" in error["message"]
    assert KEY not in response.text


def test_no_key_for_the_public_default_sends_nothing(tmp_path: Path, make_bundle: Any, samples: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent naming a model but no provider or URL (an adapted catalog agent) and no key:
    refused at once, with no request to api.openai.com (which could only answer 401)."""
    import httpx

    components = samples.components()
    components["catalog-agent"] = {**components["sales-agent"],
                                   "spec": {"llm": {"model": "sonnet"}, "prompts": [{"component": "sales-system"}]}}
    settings = samples.settings()
    settings.pop("llm", None)  # no composition-wide provider either
    bundle = make_bundle(tmp_path / "catalog", components=components, settings=settings)
    sent: list[str] = []

    async def no_network(self: Any, url: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(url)
        raise AssertionError(f"request sent to {url}")

    monkeypatch.setattr(httpx.AsyncClient, "post", no_network)
    loaded = loaded_from(bundle)
    assert "OPENAI_API_KEY" not in loaded.environ
    with TestClient(create_app(loaded, sink=RecordingSink())) as client:
        response = client.post("/v1/agents/catalog-agent/invoke", json={"input": "ping"})
    assert response.status_code == 502 and sent == []
    error = response.json()["error"]
    assert error["code"] == "LLM_NOT_CONFIGURED" and "OPENAI_API_KEY" in error["message"]


def test_unreachable_upstream_is_502(tmp_path: Path, make_bundle: Any, samples: Any) -> None:
    from agentforge.runtime.supervisor import find_free_port

    dead = f"http://127.0.0.1:{find_free_port()}/v1"
    loaded = loaded_from(remote_bundle(tmp_path, make_bundle, samples), FAKE_LLM_URL=dead, FAKE_LLM_KEY=KEY)
    with TestClient(create_app(loaded, sink=RecordingSink())) as client:
        response = client.post("/v1/agents/remote-agent/invoke", json={"input": "ping"})
        metrics = client.get("/v1/metrics").json()
    assert response.status_code == 502
    assert "could not be reached" in response.json()["error"]["message"]
    assert metrics["error_count"] == 1


# -- metrics ---------------------------------------------------------------------------


def test_metrics_flushed_at_shutdown_without_health_probes(bundle: Path) -> None:
    sink = RecordingSink()
    # A long interval: only the shutdown flush can have delivered the counts.
    with TestClient(create_app(loaded_from(bundle), sink=sink, flush_interval=3600)) as client:
        for _ in range(5):
            client.get("/health/ready")
            client.get("/ready")
        for _ in range(3):
            assert client.get("/v1/composition").status_code == 200
        client.post("/v1/prompts/nope/render", json={})
        assert sink.batches == []
    assert sink.closed
    total = sink.total
    assert (total.request_count, total.error_count, total.client_error_count) == (4, 0, 1)
    assert total.avg_ms > 0


def test_failed_flush_keeps_the_batch(bundle: Path) -> None:
    class FlakySink(RecordingSink):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def flush(self, batch: MetricsBatch) -> None:
            self.calls += 1
            if self.calls == 1:
                raise OSError("database went away")
            super().flush(batch)

    sink = FlakySink()
    app = create_app(loaded_from(bundle), sink=sink, flush_interval=0.05)
    with TestClient(app) as client:
        client.get("/v1/composition")
        client.get("/v1/composition")
        # Wait (without a timing assert) until the periodic flusher has failed once.
        while sink.calls == 0:
            client.get("/health/live")
        client.get("/v1/composition")
    assert sink.total.request_count == 3


def test_postgres_sink_combines_averages(metrics_db: Any) -> None:
    instance_id = str(uuid.uuid4())
    metrics_db.add_instance(instance_id, request_count=10, error_count=1, avg_response_time=20.0)
    sink = PostgresMetricsSink(metrics_db.url, instance_id)
    try:
        sink.flush(MetricsBatch(request_count=10, error_count=2, client_error_count=5, total_ms=400.0))
        sink.flush(MetricsBatch())  # an empty batch touches nothing
    finally:
        sink.close()
    row = metrics_db.row(instance_id)
    assert row["request_count"] == 20
    assert row["error_count"] == 3
    assert row["avg_response_time"] == pytest.approx(30.0)  # (10*20 + 400) / 20
    assert row["updated_at"] is not None


def test_postgres_sink_first_batch_and_no_updated_at_column(metrics_db: Any) -> None:
    metrics_db.execute("ALTER TABLE composition_instances DROP COLUMN updated_at")
    instance_id = str(uuid.uuid4())
    metrics_db.add_instance(instance_id)
    sink = PostgresMetricsSink(metrics_db.url, instance_id)
    try:
        sink.flush(MetricsBatch(request_count=4, error_count=0, total_ms=10.0))
        sink.flush(MetricsBatch(request_count=1, error_count=1, total_ms=5.0))
    finally:
        sink.close()
    import psycopg  # updated_at is gone, so not metrics_db.row(): query by hand

    with psycopg.connect(metrics_db.url) as conn:
        row = conn.execute(
            "SELECT request_count, error_count, avg_response_time FROM composition_instances WHERE id = %s",
            (instance_id,),
        ).fetchone()
    assert row == (5, 1, pytest.approx(3.0))


def test_postgres_sink_unreachable_is_a_clear_error() -> None:
    from agentforge.runtime.supervisor import find_free_port

    url = f"postgresql://agentforge:pw-not-shown@127.0.0.1:{find_free_port()}/none"
    sink = PostgresMetricsSink(url, str(uuid.uuid4()), connect_timeout=2)
    with pytest.raises(ConfigError) as info:
        sink.flush(MetricsBatch(request_count=1, total_ms=1.0))
    assert info.value.code == "METRICS_FLUSH_FAILED"
    assert "pw-not-shown" not in info.value.message


def test_postgres_sink_against_the_real_table(metrics_db: Any) -> None:
    # The ORM schema (models/tables.py) in the throwaway database, replacing the stand-in table:
    # proves the UPDATE matches the real column names and types.
    sa = pytest.importorskip("sqlalchemy")
    tables = pytest.importorskip("models.tables")
    metrics_db.execute("DROP TABLE composition_instances")
    import psycopg

    engine = sa.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(metrics_db.url))
    try:
        tables.Base.metadata.create_all(engine)
        composition_id, instance_id = uuid.uuid4(), uuid.uuid4()
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO compositions (id, name, version, definition) VALUES (:id, 'c', '1.0.0', '{}')"),
                {"id": composition_id},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO composition_instances (id, composition_id, name, config) VALUES (:i, :c, 'd', '{}')"
                ),
                {"i": instance_id, "c": composition_id},
            )
        sink = PostgresMetricsSink(metrics_db.url, str(instance_id))
        try:
            sink.flush(MetricsBatch(request_count=2, error_count=1, total_ms=8.0))
        finally:
            sink.close()
        with engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT request_count, error_count, avg_response_time FROM composition_instances")
            ).one()
        assert tuple(row) == (2, 1, pytest.approx(4.0))
    finally:
        engine.dispose()
