"""Flow: publish an installed component's local changes (push, or fork + push + pull request)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.publish import ensure_fork, finish_publish, open_pull_request, prepare_publish, push_branch


@flow(name="publish-component", validate_parameters=True)
def publish_component(component: str, message: str | None = None, branch: str | None = None, fork: bool = False,
                      pr: bool = False, title: str | None = None, body: str | None = None,
                      draft: bool = False) -> dict[str, Any]:
    """Commit COMPONENT's local changes on a branch and publish them.

    Parameters carry no token (tasks fetch it). A re-run after a failure reuses the recorded
    branch, commit, fork and pull request instead of creating second ones.
    """
    plan = prepare_publish(component, message, branch, fork, pr, title, body, draft)
    fork_target = ensure_fork(plan) if plan.route == "fork" else None
    pushed = push_branch(plan, fork_target)
    pull = open_pull_request(plan, fork_target) if plan.want_pr else None
    return dict(finish_publish(plan, pushed, fork_target, pull).model_dump())
