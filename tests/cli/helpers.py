"""Run the real `agentforge` console script in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AGENTFORGE = [sys.executable, "-m", "agentforge.cli.main"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300,
        input: str | None = None) -> Result:
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([*AGENTFORGE, *args], capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout, input=input)
    return Result(proc.returncode, proc.stdout, proc.stderr)
