"""The GitHub webhook receiver: ``POST /webhooks/github`` (Starlette, served by uvicorn).

A request does only cheap, bounded work before it is answered: read at most 1 MiB, check the
HMAC signature, match the repository, and insert one row (the durable record, keyed on the
SHA-256 of the signed body, so a replay inserts nothing). It answers 202 at once; a
dispatcher loop in the same process claims recorded-but-not-started rows and starts the
deploy-on-merge deployment with ``run_deployment(..., timeout=0)`` (idempotency key = the body
hash). Because the loop claims from Postgres, a crash between the record and the run loses
nothing: the next receiver to start (or another running one) picks the row up.

When the deploy-on-merge deployment does not exist on the Prefect API (nothing is being
served), the flow runs in this process instead, on a background thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentforge.config import Settings, get_settings
from agentforge.errors import ConfigError
from agentforge.runtime.server import BodyTooLarge, read_limited
from agentforge.services import webhooks as svc
from models.webhooks import PendingDelivery

log = logging.getLogger("agentforge.webhook")

Trigger = Callable[[PendingDelivery], str]


def _answer(http_status: int, **body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=http_status)


def run_deployment_trigger(settings: Settings) -> Trigger:
    """Start deploy-on-merge through the Prefect API; in-process when the deployment is missing."""

    def trigger(delivery: PendingDelivery) -> str:
        from prefect.client.schemas.objects import FlowRun
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound

        parameters = {"request": {"repository": delivery.repository_name, "commit": delivery.head_commit,
                                  "delivery": delivery.body_sha256}}
        try:
            # Called from a worker thread, so the sync variant runs and returns a FlowRun.
            run = cast(FlowRun, run_deployment(
                name=settings.on_merge_deployment, parameters=parameters, timeout=0,
                idempotency_key=f"webhook-{delivery.body_sha256}", tags=["webhook"], as_subflow=False))
        except ObjectNotFound:
            return _run_in_process(delivery)
        return str(run.id)

    return trigger


def _run_in_process(delivery: PendingDelivery) -> str:
    from flows.on_merge import MergeRequest, deploy_on_merge

    request = MergeRequest(repository=delivery.repository_name, commit=delivery.head_commit,
                           delivery=delivery.body_sha256)

    def work() -> None:
        try:
            deploy_on_merge(request)
        except Exception:
            log.exception("deploy-on-merge for %s failed (in-process run)", delivery.repository_name)

    threading.Thread(target=work, name=f"on-merge-{delivery.body_sha256[:12]}", daemon=True).start()
    log.warning("deployment %s not found; deploy-on-merge runs in the receiver process",
                get_settings().on_merge_deployment)
    return "in-process"


class Dispatcher:
    """Claims recorded deliveries from Postgres and starts their runs, one at a time."""

    def __init__(self, trigger: Trigger, settings: Settings, *, poll_seconds: float = 5.0,
                 lease_seconds: float = 120.0) -> None:
        self.trigger = trigger
        self.settings = settings
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self._wake = asyncio.Event()
        self.started = 0

    def wake(self) -> None:
        self._wake.set()

    def dispatch_once(self) -> int:
        """Claim due deliveries and start each; returns how many started (blocking; use a thread)."""
        started = 0
        for delivery in svc.claim_pending(lease_seconds=self.lease_seconds, settings=self.settings):
            try:
                run_id = self.trigger(delivery)
            except Exception as exc:
                log.warning("could not start deploy-on-merge for delivery %s: %s", delivery.body_sha256[:12], exc)
                svc.mark_retry(delivery.id, f"{type(exc).__name__}: {exc}", attempts=delivery.attempts,
                               settings=self.settings)
                continue
            svc.mark_started(delivery.id, run_id, settings=self.settings)
            started += 1
        self.started += started
        return started

    async def run(self) -> None:
        while True:
            try:
                await run_in_threadpool(self.dispatch_once)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook dispatcher tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            self._wake.clear()


def create_app(*, settings: Settings | None = None, trigger: Trigger | None = None, dispatch: bool = True,
               poll_seconds: float = 5.0) -> Starlette:
    """The ASGI app. ``trigger`` starts one delivery's run (default: ``run_deployment``);
    ``dispatch=False`` records deliveries without starting them (another receiver will)."""
    settings = settings or get_settings()
    dispatcher = Dispatcher(trigger or run_deployment_trigger(settings), settings, poll_seconds=poll_seconds)

    async def github(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return _answer(400, error="invalid Content-Length")
            if int(declared) > svc.MAX_BODY_BYTES:
                return _answer(413, error="body over 1 MiB")
        try:
            body = await read_limited(request, svc.MAX_BODY_BYTES)
        except BodyTooLarge:
            return _answer(413, error="body over 1 MiB")
        except ClientDisconnect:
            return _answer(400, error="client disconnected")
        event = request.headers.get("x-github-event", "")
        signature = request.headers.get("x-hub-signature-256")
        payload = svc.parse_payload(body)
        try:
            repo = await run_in_threadpool(svc.find_repository, svc.payload_urls(payload or {}), settings=settings)
            secret = svc.secret_for(repo.name if repo else None, settings)
        except ConfigError as exc:
            log.error("webhook secret unavailable: %s", exc.message)
            return _answer(500, error="the webhook secret is not available on this server")
        if secret is None or not svc.verify_signature(secret, body, signature):
            return _answer(401, error="missing or invalid X-Hub-Signature-256")
        if event == "ping":
            return _answer(200, status="pong")
        if payload is None:
            return _answer(400, error="the body is not a JSON object")
        if repo is None or not repo.is_active:
            return _answer(202, status="ignored", reason="unknown or disabled repository")
        merge = svc.merge_event(event, payload, repo.default_branch)
        if merge is None:
            return _answer(202, status="ignored", reason=f"not a merge into {repo.default_branch}")
        digest = svc.body_digest(body)
        fresh = await run_in_threadpool(svc.record_delivery, body_sha256=digest,
                                        github_delivery=request.headers.get("x-github-delivery"), merge=merge,
                                        repository=repo, settings=settings)
        if not fresh:
            return _answer(202, status="duplicate", delivery=digest)
        dispatcher.wake()
        log.info("delivery %s recorded for %s (%s)", digest[:12], repo.name, event)
        return _answer(202, status="accepted", delivery=digest, repository=repo.name)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(dispatcher.run()) if dispatch else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = Starlette(routes=[Route("/webhooks/github", github, methods=["POST"])], lifespan=lifespan)
    app.state.dispatcher = dispatcher
    return app


def serve(host: str = "127.0.0.1", port: int | None = None, *, settings: Settings | None = None) -> None:
    """Run the receiver until interrupted (blocks)."""
    import uvicorn

    settings = settings or get_settings()
    if svc.webhook_config(settings).has_any_secret is False:
        raise ConfigError("no webhook secret is configured: every delivery would be refused",
                          code="WEBHOOK_SECRET_MISSING",
                          hint="Set AGENTFORGE_WEBHOOK_SECRET (the secret of the GitHub webhook), or "
                               "webhook_secret_refs per repository.")
    uvicorn.run(create_app(settings=settings), host=host, port=port or settings.webhook_port, log_level="warning",
                access_log=False)


__all__ = ["Dispatcher", "create_app", "run_deployment_trigger", "serve"]
