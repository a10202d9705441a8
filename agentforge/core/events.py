"""In-process progress events: tasks emit, the CLI (or nobody) listens.

Kept out of flow parameters and results: a listener is a process-local callable, so a CLI
can draw a live display while a flow runs in the same process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Listener = Callable[[str, dict[str, Any]], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def subscribe(listener: Listener) -> Callable[[], None]:
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def emit(event: str, **data: Any) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(event, data)
        except Exception:  # noqa: S110 - a broken display must never fail the work
            pass
