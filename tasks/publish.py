"""Tasks of the publish flow: thin wrappers over ``agentforge.services.publish``.

Tasks that call the GitHub API carry the tag ``github-api`` (a Prefect concurrency limit on
that tag bounds how many run at once). Each task fetches the GitHub token itself: no token
ever travels as a task or flow parameter, so none reaches the Prefect API.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from agentforge.errors import is_retryable
from agentforge.services import publish as svc

log = logging.getLogger(__name__)

GITHUB_TAG = "github-api"
#: The longest rate-limit wait a retry sits out (GitHub's primary limit resets hourly).
MAX_RATE_LIMIT_WAIT_SECONDS = 3600.0


def _exception(state: Any) -> BaseException | None:
    exc = getattr(state, "data", None)
    if isinstance(exc, BaseException):
        return exc
    try:
        state.result(raise_on_failure=True)
    except BaseException as raised:
        return raised
    return None


def retry_after_rate_limit(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: transient errors only; a rate limit first sits out its wait.

    Prefect's delay between retries is fixed per task, so the wait GitHub asks for
    (``GitHubRateLimited.wait_seconds``, from ``X-RateLimit-Reset`` or ``Retry-After``) is
    spent here, before the retry is scheduled; the task's own short delay follows.
    """
    exc = _exception(state)
    if exc is None or not is_retryable(exc):
        return False
    wait = getattr(exc, "wait_seconds", None)
    if isinstance(wait, (int, float)) and wait > 0:
        if wait > MAX_RATE_LIMIT_WAIT_SECONDS:
            return False
        log.warning("GitHub rate limit: waiting %.0f s before retrying %s", wait, getattr(task, "name", "a task"))
        time.sleep(wait)
    return True


@task(name="prepare-publish", task_run_name="prepare-publish-{component}", tags=[GITHUB_TAG], retries=3,
      retry_delay_seconds=[2, 10, 30], retry_condition_fn=retry_after_rate_limit, cache_policy=NONE)
def prepare_publish(component: str, message: str | None, branch: str | None, fork: bool, pr: bool,
                    title: str | None, body: str | None, draft: bool) -> svc.PublishPlan:
    """Build the commit in the mirror, choose branch and route, commit the push step's intent."""
    return svc.prepare_publish(svc.PublishRequest(component=component, message=message, branch=branch, fork=fork,
                                                  pr=pr, title=title, body=body, draft=draft))


@task(name="ensure-fork", tags=[GITHUB_TAG], retries=3, retry_delay_seconds=[2, 10, 30],
      retry_condition_fn=retry_after_rate_limit, cache_policy=NONE)
def ensure_fork(plan: svc.PublishPlan) -> svc.ForkTarget:
    return svc.ensure_fork(plan)


@task(name="push-branch", retries=3, retry_delay_seconds=[3, 10, 30], retry_condition_fn=retry_after_rate_limit,
      cache_policy=NONE)
def push_branch(plan: svc.PublishPlan, fork: svc.ForkTarget | None) -> svc.PushOutcome:
    """git push (network, retried); a rejected push is not retried."""
    return svc.push_branch(plan, fork)


@task(name="open-pull-request", tags=[GITHUB_TAG], retries=3, retry_delay_seconds=[2, 10, 30],
      retry_condition_fn=retry_after_rate_limit, cache_policy=NONE)
def open_pull_request(plan: svc.PublishPlan, fork: svc.ForkTarget | None) -> svc.PullRequestOutcome:
    return svc.open_pull_request(plan, fork)


@task(name="finish-publish", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_after_rate_limit,
      cache_policy=NONE)
def finish_publish(plan: svc.PublishPlan, push: svc.PushOutcome, fork: svc.ForkTarget | None,
                   pull: svc.PullRequestOutcome | None) -> svc.PublishOutcome:
    return svc.finish_publish(plan, push, fork, pull)


@task(name="reconcile-published", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_after_rate_limit,
      cache_policy=NONE)
def reconcile_published(repository_id: str) -> list[str]:
    """After a repository's sync: FORKED components whose change is merged upstream → SYNCED."""
    return svc.reconcile_published(repository_id)
