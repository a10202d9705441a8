"""The console script's exit: the command's work, its atexit handlers, its output, its status;
then no interpreter tear-down (``agentforge.cli.main.entry``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

_PROBE = """
import atexit, sys
from concurrent.futures import ThreadPoolExecutor
pool = ThreadPoolExecutor(2)
pool.submit(lambda: None).result()   # an idle worker thread left running, as a command may leave one
atexit.register(lambda: print("ATEXIT RAN", flush=True))
class Finalised:
    def __del__(self):
        print("TEAR-DOWN RAN", flush=True)
keep = Finalised()   # module-level: only the interpreter's tear-down would finalise it
sys.argv = ["agentforge", *sys.argv[1:]]
from agentforge.cli.main import entry
entry()
print("NOT REACHED")
"""


@pytest.mark.parametrize(("args", "status", "shown"), [(["--version"], 0, "agentforge "),
                                                      (["--json", "no-such-command"], 2, '"USAGE_ERROR"')])
def test_entry_keeps_status_output_and_atexit_and_skips_the_tear_down(args: list[str], status: int,
                                                                      shown: str) -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == status, done.stderr
    assert shown in done.stdout and "ATEXIT RAN" in done.stdout, done.stdout
    assert "NOT REACHED" not in done.stdout and "TEAR-DOWN RAN" not in done.stdout
    assert "Traceback" not in done.stderr, done.stderr
