"""Scale-out: two `agentforge serve` processes on one Prefect API share the runs (each run goes to
exactly one), run them at the same time, and sync the same repositories safely; a tag
concurrency limit bounds tasks tagged as GitHub API callers."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.deployments.conftest import (
    Served,
    deployments_registered,
    scalar,
    start_served,
    tool_yaml,
    wait_final,
    wait_for,
)
from tests.gitfactory import GitRepoFactory


@pytest.fixture(scope="module")
def two_workers(served: Served, api_url: str, module_home: Path, engine: sa.Engine,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Served]]:
    """The session's served process plus a second one: two workers on one Prefect API."""
    second = start_served(api_url, tmp_path_factory.mktemp("logs"), "second", limit=1)
    workers = [served, second]
    try:
        wait_for(lambda: any(w.proc.poll() is not None for w in workers) or
                 (deployments_registered(["sync-one/sync-one"]) and
                  all("Serving" in w.log() for w in workers)), "both workers to serve")
        for w in workers:
            if w.proc.poll() is not None:
                pytest.fail(f"worker {w.name} exited:\n{w.log()[-3000:]}")
        yield workers
    finally:
        second.stop()


def test_two_workers_share_runs_and_sync_the_same_repositories_safely(
        two_workers: list[Served], clean_db: sa.Engine, factory: GitRepoFactory) -> None:
    from prefect.deployments import run_deployment

    from agentforge.services.repos import add_repository

    for name in ("shared-a", "shared-b"):
        repo = factory.create(name, files={f"tools/{name}-t/component.yaml": tool_yaml(f"{name}-t", "1.0.0")},
                              tag="v1.0.0")
        add_repository(repo.url, name=name)
    runs = [run_deployment("sync-one/sync-one", parameters={"request": {"repository": name}}, timeout=0)
            for name in ("shared-a", "shared-b", "shared-a", "shared-b")]
    finals = [wait_final(r.id, two_workers) for r in runs]
    assert all(f.state.is_completed() for f in finals), [f.state for f in finals]

    # Which worker submitted which run (each runner logs the runs it takes). Both runners may race
    # for one run: the server gives it to one, and the other logs "Aborted submission of flow run
    # '<id>'" (prefect/runner/_state_proposer.py): such lines name a run that runner did not take.
    run_id = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    taken = {w.name: {found for line in w.log().splitlines() if "Aborted submission" not in line
                      for found in run_id.findall(line)}
             for w in two_workers}
    ids = {str(r.id) for r in runs}
    by_worker = {name: ids & seen for name, seen in taken.items()}
    first, second = (by_worker[w.name] for w in two_workers)
    assert first and second, by_worker          # both workers took runs
    assert not (first & second)                 # no run was executed twice
    assert first | second == ids

    # Same repositories synced from both workers: one row per component, both SYNCED.
    assert scalar(clean_db, "SELECT count(*) FROM repositories WHERE sync_status::text = 'SYNCED'") == 2
    assert scalar(clean_db, "SELECT count(*) FROM components") == 2


def test_the_github_tag_concurrency_limit_applies_to_tagged_tasks(prefect_api: None) -> None:
    from prefect import flow, task
    from prefect.client.orchestration import get_client
    from prefect.task_runners import ThreadPoolTaskRunner

    from deployments.serve import ensure_github_concurrency_limit
    from tasks.on_merge import GITHUB_API_TAG

    asyncio.run(ensure_github_concurrency_limit(1))
    events: list[tuple[str, int]] = []
    guard = threading.Lock()

    @task(name="fake-github-call", tags=[GITHUB_API_TAG], retries=0)
    def call(i: int) -> int:
        with guard:
            events.append(("start", i))
        time.sleep(0.3)  # long enough that an unlimited runner would overlap the calls
        with guard:
            events.append(("end", i))
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=3))
    def burst() -> list[int]:
        return [f.result() for f in [call.submit(i) for i in range(3)]]

    async def read_limit() -> int:
        async with get_client() as client:
            return (await client.read_concurrency_limit_by_tag(GITHUB_API_TAG)).concurrency_limit

    try:
        assert sorted(burst()) == [0, 1, 2]
        assert asyncio.run(read_limit()) == 1
    finally:
        async def drop() -> None:
            async with get_client() as client:
                await client.delete_concurrency_limit_by_tag(GITHUB_API_TAG)

        asyncio.run(drop())
    kinds = [k for k, _ in events]
    assert kinds == ["start", "end"] * 3, events  # never two calls in flight
