"""Read-path benchmark: ``agentforge ls`` and ``agentforge status`` over 10,000 components.

    .venv/bin/python bench/read_path.py                # 10,000 components, all installed
    .venv/bin/python bench/read_path.py --quick        # 1,000 components
    .venv/bin/python bench/read_path.py -n 5000 --repeat 7
    .venv/bin/python bench/read_path.py --quick --keep   # keep the database and home (for a profiler)

A fresh database (``AGENTFORGE_TEST_DATABASE_URL`` when set, else an embedded server under a
temporary home; its start-up is not counted) gets N component rows in one repository, every
one installed: a folder under the install root with its ``component.yaml`` and README, the
``.forge`` record install writes (file hashes), so ``status`` does its real work — folding
direct edits means hashing every installed file.

Measured, best of ``--repeat`` runs, each a new process as a user runs it (output to a pipe):

- baseline: ``python -c 'import sqlalchemy'`` plus one query (connect, ``SELECT count(*) FROM
  components``) — the least any read-only command that asks Postgres can cost;
- ``agentforge ls`` (every component, latest version, other versions);
- ``agentforge status`` with no stat index (``<install root>/.forge/status.index`` deleted before
  each run): every installed file read and hashed, as the first status after an install;
- ``agentforge status`` as a user runs it again: folders unchanged since the last run are
  answered from the stat index (still one ``stat`` per file and a listing per folder).

Goal (issue 10): each within 3 × the baseline. Nothing is asserted; the ratios are printed,
and the last line is ``BENCH {json}`` for ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_TMP = Path(tempfile.mkdtemp(prefix="agentforge-bench-read-"))
os.environ["AGENTFORGE_HOME"] = str(_TMP / "home")
os.environ["AGENTFORGE_CONFIG_FILE"] = str(_TMP / "config.toml")

import sqlalchemy as sa  # noqa: E402

GOAL = 3.0


@contextmanager
def scratch_database(*, keep: bool = False) -> Iterator[str]:
    from _scratch import scratch_database as shared  # bench/ is the script's folder

    if not keep:
        # Registered before the embedded server's own exit handler, so it runs after it (which
        # still writes under XDG_RUNTIME_DIR, inside the temporary folder).
        atexit.register(shutil.rmtree, _TMP, True)
    with shared(_TMP, keep=keep) as url:
        yield url
    if not keep:
        shutil.rmtree(_TMP, ignore_errors=True)


def populate(engine: sa.Engine, n: int, install_root: Path) -> None:
    """N installed components (each its folder, files and install record), in one transaction."""
    from agentforge.core.hashing import sha256_hex

    repo_id = uuid.uuid4()
    url = "https://github.com/bench/read-path"
    state = install_root / ".forge"
    state.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"tool-{i:05d}"
        commit = uuid.uuid5(uuid.NAMESPACE_URL, name).hex + "0" * 8
        definition = {"apiVersion": "forge.dev/v1", "kind": "Tool", "metadata": {"name": name, "version": "1.0.0"},
                      "spec": {"type": "function", "description": f"benchmark tool {i}"}}
        folder = install_root / name
        folder.mkdir()
        files = {"component.yaml": json.dumps(definition).encode(), "README.md": f"# {name}\n".encode()}
        for rel, data in files.items():
            (folder / rel).write_bytes(data)
        (state / f"{name}.json").write_text(json.dumps({
            "key": f"github.com/bench/read-path/{name}", "component": name, "version": "1.0.0", "commit": commit,
            "checksum": "sha256:" + "0" * 64, "files": {rel: sha256_hex(data) for rel, data in files.items()}}))
        rows.append({"id": uuid.uuid4(), "name": name, "commit": commit, "path": f"tools/{name}",
                     "d": json.dumps(definition), "install": str(folder), "url": url, "repo": repo_id})
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO repositories (id, name, url, type, sync_status) "
                             "VALUES (:id, 'read-path', :url, 'TOOLS', 'SYNCED')"), {"id": repo_id, "url": url})
        conn.execute(sa.text(
            "INSERT INTO components (id, name, type, version, repository_id, repository_url, path, commit_hash, "
            "definition, original_definition, tree_hash, release_tags, is_release, is_installed, install_path, "
            "installed_at, sync_status) VALUES (:id, :name, 'TOOL', '1.0.0', :repo, :url, :path, :commit, "
            "CAST(:d AS jsonb), CAST(:d AS jsonb), :commit, ARRAY['v1.0.0'], true, true, :install, now(), 'SYNCED')"),
            rows)
        conn.execute(sa.text("ANALYZE components"))


def best_of(command: list[str], repeat: int, env: dict[str, str], before: Callable[[], None] | None = None) -> float:
    best = float("inf")
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, cwd=_TMP)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr.decode()[-2000:]}")
        best = min(best, elapsed)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 components")
    parser.add_argument("-n", "--components", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true",
                        help="keep the scratch database and home, and print the environment to reuse them")
    args = parser.parse_args()
    n = args.components or (1000 if args.quick else 10_000)

    with scratch_database(keep=args.keep) as url:
        os.environ["AGENTFORGE_DATABASE_URL"] = url
        from agentforge.config import get_settings, reset_settings_cache
        from agentforge.db import get_engine
        from models.migrate import ensure_schema

        reset_settings_cache()
        engine = get_engine()
        ensure_schema(engine, auto_upgrade=True)
        start = time.perf_counter()
        populate(engine, n, get_settings().effective_install_root)
        setup_s = time.perf_counter() - start
        env = {**os.environ, "COLUMNS": "120"}
        baseline_code = ("import sqlalchemy as sa, os; e = sa.create_engine(os.environ['AGENTFORGE_DATABASE_URL']"
                         ".replace('postgresql://', 'postgresql+psycopg://', 1), poolclass=sa.pool.NullPool); "
                         "c = e.connect(); c.execute(sa.text('SELECT count(*) FROM components')).scalar()")
        baseline = best_of([sys.executable, "-c", baseline_code], args.repeat, env)
        import_only = best_of([sys.executable, "-c", "import sqlalchemy"], args.repeat, env)
        cli = [sys.executable, "-m", "agentforge.cli.main"]
        ls_s = best_of([*cli, "ls"], args.repeat, env)
        index = get_settings().effective_install_root / ".forge" / "status.index"
        cold_s = best_of([*cli, "status"], args.repeat, env, before=lambda: index.unlink(missing_ok=True))
        status_s = best_of([*cli, "status"], args.repeat, env)

    figures: list[dict[str, Any]] = [
        {"figure": "python -c 'import sqlalchemy' (raw)", "value": import_only, "goal": None, "baseline": None},
        {"figure": "import sqlalchemy + one query (raw)", "value": baseline, "goal": None, "baseline": None},
        {"figure": f"agentforge ls ({n} components)", "value": ls_s, "goal": GOAL, "baseline": baseline},
        {"figure": f"agentforge status, no index ({n})", "value": cold_s, "goal": GOAL, "baseline": baseline},
        {"figure": f"agentforge status ({n} installed)", "value": status_s, "goal": GOAL, "baseline": baseline},
    ]
    print(f"\nAgentForge read-path benchmark: {n} components, all installed; best of {args.repeat} "
          f"(setup {setup_s:.1f} s, not measured)")
    print(f"{'figure':<40}{'seconds':>9}{'ratio':>8}  goal")
    for f in figures:
        ratio = f"{f['value'] / f['baseline']:8.2f}" if f["baseline"] else " " * 8
        goal = f"≤ {f['goal']:g} × baseline" if f["goal"] else ""
        print(f"{f['figure']:<40}{f['value']:>9.3f}{ratio}  {goal}")
    if args.keep:
        print(f"\nKept (drop the database and remove the folder when done):\n"
              f"  export AGENTFORGE_HOME={os.environ['AGENTFORGE_HOME']} "
              f"AGENTFORGE_CONFIG_FILE={os.environ['AGENTFORGE_CONFIG_FILE']} "
              f"AGENTFORGE_DATABASE_URL={os.environ['AGENTFORGE_DATABASE_URL']}")
    print("BENCH " + json.dumps({"benchmark": "read_path", "figures": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
