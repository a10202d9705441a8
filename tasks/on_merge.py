"""Tasks of the deploy-on-merge flow: thin wrappers over ``agentforge.services.webhooks``."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from agentforge.services import webhooks as svc
from tasks.retry import transient_only

# Tasks that call the GitHub API carry this tag; `agentforge serve` sets a Prefect concurrency
# limit on it (settings.github_api_concurrency) so many workers together stay under GitHub's
# secondary rate limits. None exist yet: publish's tasks must use it.
GITHUB_API_TAG = "github-api"


@task(name="plan-relocks", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=transient_only,
      cache_policy=NONE)
def plan_relocks(repository: str) -> list[svc.RelockPlan]:
    """The compositions that use the merged repository, and how to re-lock each."""
    return svc.relock_plans(repository)


@task(name="auto-deploy-targets", task_run_name="auto-deploy-targets-{composition}", retries=2,
      retry_delay_seconds=[1, 5], retry_condition_fn=transient_only, cache_policy=NONE)
def auto_deploy_targets(composition: str) -> list[svc.DeployTarget]:
    """The composition's deployed instances, each marked with why it is skipped (hold, auto_deploy off)."""
    return svc.auto_deploy_targets(composition)
