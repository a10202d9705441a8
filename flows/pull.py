"""Flow: pull upstream into an installed component (fast forward or three-way merge)."""

from __future__ import annotations

from typing import Literal

from prefect import flow

from tasks.pull import abort_pull, apply_pull, plan_pull, prepare_pull


@flow(name="pull-component", validate_parameters=True)
def pull(name: str, to_version: str | None = None,
         mode: Literal["merge", "overwrite", "stash"] = "merge") -> dict[str, object]:
    """Bring NAME to TO_VERSION (default: newest release), keeping every local change."""
    plan = plan_pull(name, to_version, mode)
    if plan.up_to_date:
        return {"name": plan.name, "result": "up-to-date", "to_version": plan.to_version,
                "from_version": plan.from_version, "to_commit": plan.to_commit, "mode": mode, "conflicts": [],
                "sync_status": "MODIFIED" if plan.local_definition is not None else "SYNCED", "stash": None}
    try:
        prepared = prepare_pull(plan)
    except BaseException as exc:
        abort_pull(plan, f"{type(exc).__name__}: {exc}")
        raise
    return dict(apply_pull(plan, prepared).model_dump())
