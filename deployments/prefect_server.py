"""Settings for the Prefect server AgentForge's flows report to (``prefect server start``).

Prefect's task-run recorder writes every task-run event in its own transaction by default
(``batch_size`` 1). A sync runs one task per repository and each task sends three state events,
so a sync of 50 repositories cost a SQLite-backed server about 1.1–1.5 s of CPU, on the same
cores as the sync when both run on one machine. Batched, the same 50 task runs cost it about
0.4–0.6 s (``bench/sync.py`` prints the server's CPU; ``--prefect-defaults`` measures against
a stock server). The event persister and the triggers service read and write events in batches
too: about 0.1 s less of the server's CPU per such sync (session 9, paired runs: 0.54 s against
0.66 s on average). The price: the UI shows a task run, or an event, up to ``flush_interval``
seconds after it arrives (one second; Prefect's default is five for events). Nothing here
changes what a flow does or what Prefect keeps (a server stopping flushes what it holds).

Export them where the server starts (``env $(python -m deployments.prefect_server) prefect
server start``), or put them in the server's Prefect profile. They are server settings: a
client, ``agentforge serve`` included, ignores them. The CLI's in-process API server (no
``PREFECT_API_URL``) is started with them (``flows.inprocess.start_in_process_api``), except
those the user set.
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
    # The event persister (every event, for the UI's event feed) likewise: 200 events per
    # transaction instead of 20, taken off the broker 200 at a time instead of one, flushed every
    # second instead of every 5 s.
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1",
    # The triggers service (automations) takes events off the broker 200 at a time instead of one;
    # it still evaluates them one by one, in order.
    "PREFECT_SERVER_SERVICES_TRIGGERS_READ_BATCH_SIZE": "200",
}


if __name__ == "__main__":
    print(" ".join(f"{k}={v}" for k, v in RECOMMENDED_SERVER_ENV.items()))
