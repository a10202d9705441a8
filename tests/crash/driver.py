"""Run one AgentForge step in this process so a crash test can SIGKILL it at a named point.

    python -m tests.crash.driver sync
    python -m tests.crash.driver install LOCKFILE
    python -m tests.crash.driver pull NAME
    python -m tests.crash.driver deploy NAME ENVIRONMENT SET...

With ``AGENTFORGE_CRASH_AT=<point>`` in the environment the process dies by SIGKILL at that
point (``agentforge.core.faults.checkpoint``). Install and deploy carry their checkpoints in
the service code; the sync points are placed here by wrapping the functions sync calls (its
module is being tuned by others, and every point of interest is a call boundary), and the
pull points come from the devloop's own ``FAULT_HOOK`` steps. The steps run as the service
functions the flows wrap (the same order as the flows), without Prefect: a subprocess that
starts fast keeps the many crash cases affordable.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from agentforge.core.faults import checkpoint

# The points the tests kill at. Others exist and are skipped as equivalent to a listed one (same
# committed state): sync.read (= sync.fetched), sync.finish (= sync.insert: one open transaction),
# sync.done, pull.plan (= pull.intent: nothing committed), pull.done and deploy.done.
SYNC_POINTS = ["sync.planned", "sync.intent", "sync.fetched", "sync.insert"]
INSTALL_POINTS = ["install.staged", "install.swap", "install.swap:2", "install.recorded", "install.done"]
PULL_POINTS = ["pull.intent", "pull.read", "pull.merge", "pull.stage", "pull.swap", "pull.records", "pull.database",
               "pull.commit"]
DEPLOY_POINTS = ["deploy.locked", "deploy.bundle", "deploy.intent", "deploy.spawned", "deploy.ready",
                 "deploy.switched"]


def _hook_sync() -> None:
    from agentforge.gitops import RepositoryMirror
    from agentforge.services import sync as svc
    from models import repositories as repos_q

    fetch = RepositoryMirror.fetch

    def crashing_fetch(self: RepositoryMirror, *args: Any, **kwargs: Any) -> Any:
        checkpoint("sync.intent")  # SYNC_IN_PROGRESS and the operation row are committed
        out = fetch(self, *args, **kwargs)
        checkpoint("sync.fetched")  # the mirror has the objects, the database nothing new
        return out

    # The snapshot reader sync calls has been renamed as sync evolves: wrap whichever it has.
    reader_name = next(n for n in ("read_catalog_snapshot", "read_snapshot") if hasattr(svc, n))
    read = getattr(svc, reader_name)

    def crashing_read(*args: Any, **kwargs: Any) -> Any:
        out = read(*args, **kwargs)
        checkpoint("sync.read")
        return out

    insert = repos_q.insert_components

    def crashing_insert(**kwargs: Any) -> Any:
        out = insert(**kwargs)
        checkpoint("sync.insert")  # rows inserted in the open write transaction
        return out

    finish = repos_q.finish_sync_success

    def crashing_finish(**kwargs: Any) -> Any:
        out = finish(**kwargs)
        checkpoint("sync.finish")  # SYNCED written, not committed yet
        return out

    RepositoryMirror.fetch = crashing_fetch  # type: ignore[method-assign]
    setattr(svc, reader_name, crashing_read)
    repos_q.insert_components = crashing_insert  # type: ignore[assignment]
    repos_q.finish_sync_success = crashing_finish  # type: ignore[assignment]


def run_sync() -> dict[str, Any]:
    from agentforge.services import sync as svc

    _hook_sync()
    plan = svc.check_and_record(None)
    checkpoint("sync.planned")
    results = [svc.sync_repository(repo_id, remote=plan.remote.get(repo_id)).model_dump(mode="json")
               for repo_id in plan.to_sync]
    checkpoint("sync.done")
    return {"results": results}


def run_install(lock_path: str) -> dict[str, Any]:
    from agentforge.core.lockfile import parse_lock
    from agentforge.services.install import install_lock

    outcome = install_lock(parse_lock(Path(lock_path).read_bytes(), source=lock_path))
    return outcome.model_dump(mode="json")


def run_pull(name: str) -> dict[str, Any]:
    from agentforge.services import devloop

    devloop.FAULT_HOOK = lambda step: checkpoint(f"pull.{step}")
    outcome = devloop.pull_component(name)
    checkpoint("pull.done")
    return outcome.model_dump(mode="json")


def run_deploy(name: str, environment: str, *sets: str) -> dict[str, Any]:
    from agentforge.services import deploy as svc

    lock = svc.frozen_lock(name) or svc.lock_composition(name)
    svc.check_not_held(name, environment, lock, force=False)
    checkpoint("deploy.locked")
    bundle = svc.build_bundle(name, environment, lock)
    results = []
    for instance_name in svc.instance_names(name, environment, None):
        plan = svc.prepare_deployment(name, environment, instance_name, lock, bundle, list(sets))
        outcome = svc.start_candidate(plan)
        checkpoint("deploy.ready")
        results.append(svc.complete_deployment(plan, outcome).model_dump(mode="json"))
    checkpoint("deploy.done")
    return {"results": results}


#: Where inside ``git fetch`` the whole process group (this driver, git and its helpers) is killed:
#: ``pack`` — while the remote is producing the pack (``uploadpack.packObjectsHook``); ``refs`` —
#: with the ref locks taken, before they are committed (a ``reference-transaction`` hook in the
#: "prepared" state), which leaves the ``*.lock`` files a real crash at that instant leaves.
GIT_KILL_POINTS = ["pack", "refs"]

_KILL_HOOK = """#!/bin/sh
kill -9 -"$AGENTFORGE_TEST_PGID"
sleep 5
"""

_REF_HOOK = """#!/bin/sh
# reference-transaction: $1 is prepared | committed | aborted; stdin holds "<old> <new> <ref>" lines.
[ "$1" = prepared ] || exit 0
if grep -q ' refs/\\(heads\\|tags\\)/'; then
    kill -9 -"$AGENTFORGE_TEST_PGID"
    sleep 5
fi
exit 0
"""


def run_sync_killed_in_git(where: str, scratch: str) -> dict[str, Any]:
    """A sync whose ``git fetch`` is killed from inside git (see :data:`GIT_KILL_POINTS`)."""
    os.setsid()  # our own process group: the hook kills exactly this tree
    os.environ["AGENTFORGE_TEST_PGID"] = str(os.getpgid(0))
    folder = Path(scratch)
    hooks = folder / "hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    config = folder / "gitconfig"
    if where == "pack":
        hook = folder / "pack-objects-hook"
        hook.write_text(_KILL_HOOK)
        config.write_text(f"[uploadpack]\n\tpackObjectsHook = {hook}\n")
    else:
        hook = hooks / "reference-transaction"
        hook.write_text(_REF_HOOK)
        config.write_text(f"[core]\n\thooksPath = {hooks}\n")
    hook.chmod(0o755)
    os.environ["GIT_CONFIG_GLOBAL"] = str(config)  # global config: trusted for both settings
    return run_sync()


_ORPHAN_HOOK = """#!/bin/sh
# uploadpack.packObjectsHook. The first clone: kill -9 the sync alone (not its process group, so
# its `git clone` lives on as an orphan), then let that clone go on writing a while later.
if [ ! -e "{marker}" ]; then
    touch "{marker}"
    kill -9 "$AGENTFORGE_TEST_PID"
    sleep 2
    "$@"
    status=$?
    touch "{done}"
    exit $status
fi
exec "$@"
"""


def run_sync_orphaning_clone(scratch: str) -> dict[str, Any]:
    """A first sync killed (``kill -9`` of this process only) while its ``git clone`` runs: the
    clone outlives it and keeps writing (``<scratch>/orphan-done`` appears when it is through)."""
    folder = Path(scratch)
    folder.mkdir(parents=True, exist_ok=True)
    hook = folder / "pack-objects-hook"
    hook.write_text(_ORPHAN_HOOK.format(marker=folder / "killed", done=folder / "orphan-done"))
    hook.chmod(0o755)
    config = folder / "gitconfig"
    config.write_text(f"[uploadpack]\n\tpackObjectsHook = {hook}\n")
    os.environ["AGENTFORGE_TEST_PID"] = str(os.getpid())
    os.environ["GIT_CONFIG_GLOBAL"] = str(config)
    return run_sync()


def main(argv: list[str]) -> int:
    command, *args = argv
    runners = {"sync": run_sync, "install": run_install, "pull": run_pull, "deploy": run_deploy,
               "sync-killed-in-git": run_sync_killed_in_git, "sync-orphaning-clone": run_sync_orphaning_clone}
    out = runners[command](*args)
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
