"""Tasks of the pull flow: plan (records intent), prepare (git reads, staging), apply (swap + record)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from agentforge.services import devloop
from tasks.retry import transient_only


@task(name="plan-pull", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=transient_only, cache_policy=NONE)
def plan_pull(name: str, to_version: str | None, mode: devloop.PullMode) -> devloop.PullPlan:
    """Pick the target release; commit an IN_PROGRESS sync operation before any file I/O."""
    return devloop.plan_pull(name, to_version=to_version, mode=mode)


@task(name="prepare-pull", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=transient_only,
      cache_policy=NONE)
def prepare_pull(plan: devloop.PullPlan) -> devloop.PullPrepared:
    """Read base/upstream from the mirror and merge into a staging folder (retry-safe: it only stages)."""
    return devloop.prepare_pull(plan)


@task(name="apply-pull", retries=0, cache_policy=NONE)
def apply_pull(plan: devloop.PullPlan, prepared: devloop.PullPrepared) -> devloop.PullOutcome:
    """Swap files in and move the installed row; never retried (a failure restores the old state)."""
    return devloop.apply_pull(plan, prepared)


@task(name="abort-pull", retries=2, retry_delay_seconds=[1, 5], cache_policy=NONE)
def abort_pull(plan: devloop.PullPlan, error: str) -> None:
    devloop.abort_pull(plan, error)
