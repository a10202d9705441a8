"""The retry condition every task uses: retry transient failures, fail user errors at once."""

from __future__ import annotations

from typing import Any

from agentforge.errors import is_retryable


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: the state's exception must be marked retryable."""
    exc = getattr(state, "data", None)
    if not isinstance(exc, BaseException):
        try:
            state.result(raise_on_failure=True)
        except BaseException as raised:
            exc = raised
        else:
            return False
    return is_retryable(exc)
