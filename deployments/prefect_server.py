"""Settings for the Prefect server AgentForge's flows report to (``prefect server start``).

Prefect's task-run recorder writes every task-run event in its own transaction by default
(``batch_size`` 1). A sync runs one task per repository and each task sends three state events,
so a sync of 50 repositories cost a SQLite-backed server about 1.1–1.5 s of CPU, on the same
cores as the sync when both run on one machine. Batched, the same 50 task runs cost it about
0.4–0.6 s (``bench/sync.py`` prints the server's CPU; ``--prefect-defaults`` measures against
a stock server). The price: the UI shows a task run up to ``flush_interval`` seconds after
its events arrive. Nothing here changes what a flow does or what Prefect keeps.

Export them where the server starts (``env $(python -m deployments.prefect_server) prefect
server start``), or put them in the server's Prefect profile. They are server settings: a
client, ``agentforge serve`` included, ignores them.
"""

from __future__ import annotations

#: Environment variables for ``prefect server start`` (names as Prefect 3.9 spells them).
RECOMMENDED_SERVER_ENV: dict[str, str] = {
    # Insert up to 200 task-run events per transaction instead of one...
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    # ...taking them off the message broker that many at a time...
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "200",
    # ...and writing what is queued at least every second (Prefect's default waits up to 5 s).
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}


if __name__ == "__main__":
    print(" ".join(f"{k}={v}" for k, v in RECOMMENDED_SERVER_ENV.items()))
