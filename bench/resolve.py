"""Resolver benchmark: a synthetic index in a scratch PostgreSQL database (FORMATS §3, issue 4).

    .venv/bin/python bench/resolve.py            # 2,000 components × 20 versions, depth-10 chains
    .venv/bin/python bench/resolve.py --quick    # 200 × 5, for a smoke run

Rows are inserted straight into ``components`` with set-based SQL (``generate_series``): no git
is needed to resolve. Printed figures:

* load floor: the time just to read the candidate rows from Postgres (the query the index runs);
* easy graph: ``resolve_root`` from a root that needs every chain head (all components resolved);
* lock write: rendering the lock and writing it, and persisting ``component_dependencies``;
* re-lock with nothing changed: resolve with the lock's pins, checksums reused, no rewrite;
* adversarial: a depth-10 chain of exact pins whose top versions all dead-end, so the resolver
  must backtrack through every level (one case with a solution, one without: explained conflict).

Goals (issue 4): easy graph < 2 s and within 5× the load floor; adversarial answered < 10 s;
re-lock with nothing changed < 1 s. The server is ``AGENTFORGE_TEST_DATABASE_URL`` when set,
otherwise an embedded one in a temporary folder; the scratch database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _scratch import scratch_database

T = TypeVar("T")
_TMP = Path(tempfile.mkdtemp(prefix="agentforge-bench-"))
os.environ["AGENTFORGE_HOME"] = str(_TMP / "home")
os.environ["AGENTFORGE_CONFIG_FILE"] = str(_TMP / "config.toml")

import sqlalchemy as sa  # noqa: E402


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


# One repository; component c<i> at versions 1.0.0 … 1.<V-1>.0. In each chain of 10, c<i> needs
# c<i+1> "^1.<v mod 5>"; the root needs every chain head "^1". ids/commits are md5-derived, so
# the data is the same on every run.
_EASY_SQL = """
INSERT INTO components (id, name, type, version, repository_id, repository_url, path, commit_hash,
                        definition, tree_hash, release_tags, is_release)
SELECT md5('c' || c || '@' || v)::uuid, format('c%s', lpad(c::text, 5, '0')), 'TOOL', format('1.%s.0', v),
       :repo_id, :url, format('tools/c%s', lpad(c::text, 5, '0')),
       md5('commit' || c || '@' || v) || substr(md5('x' || c || v), 1, 8),
       jsonb_build_object('apiVersion', 'forge.dev/v1', 'kind', 'Tool',
         'metadata', jsonb_build_object('name', format('c%s', lpad(c::text, 5, '0')), 'version', format('1.%s.0', v)),
         'spec', CASE WHEN c % :depth = :depth - 1 THEN '{}'::jsonb ELSE jsonb_build_object('dependencies',
            jsonb_build_object('tools', jsonb_build_array(jsonb_build_object(
              'component', format('c%s', lpad((c + 1)::text, 5, '0')), 'version', format('^1.%s', v % 5)))))
            END),
       md5('tree' || c || '@' || v) || substr(md5('t' || c || v), 1, 8),
       ARRAY[format('c%s@1.%s.0', lpad(c::text, 5, '0'), v)], true
FROM generate_series(0, :n - 1) AS c, generate_series(0, :versions - 1) AS v
"""

# x<i>@1.v.0 needs x<i+1> =1.v.0; x<last>@1.v.0 needs z =1.v.0. The root's own z constraint
# rules out every version above 1.<ok>.0, so the resolver walks the chain down level by level.
_ADV_SQL = """
INSERT INTO components (id, name, type, version, repository_id, repository_url, path, commit_hash,
                        definition, tree_hash, release_tags, is_release)
SELECT md5('adv' || i || '@' || v)::uuid, nm, 'TOOL', format('1.%s.0', v), :repo_id, :url, 'tools/' || nm,
       md5('advc' || i || '@' || v) || substr(md5('y' || i || v), 1, 8),
       jsonb_build_object('apiVersion', 'forge.dev/v1', 'kind', 'Tool',
         'metadata', jsonb_build_object('name', nm, 'version', format('1.%s.0', v)),
         'spec', CASE WHEN i = :depth THEN '{}'::jsonb ELSE jsonb_build_object('dependencies',
           jsonb_build_object('tools', jsonb_build_array(jsonb_build_object(
             'component', CASE WHEN i = :depth - 1 THEN 'z' ELSE format('x%s', i + 1) END,
             'version', format('=1.%s.0', v))))) END),
       md5('advt' || i || '@' || v) || substr(md5('u' || i || v), 1, 8), ARRAY[format('%s@1.%s.0', nm, v)], true
FROM generate_series(0, :depth) AS i, generate_series(0, :versions - 1) AS v,
     LATERAL (SELECT CASE WHEN i = :depth THEN 'z' ELSE format('x%s', i) END AS nm) AS names
"""


def _root_row(conn: sa.Connection, repo_id: uuid.UUID, url: str, name: str, deps: list[dict[str, str]],
              version: str = "1.0.0") -> None:
    import json

    definition = {"apiVersion": "forge.dev/v1", "kind": "Tool", "metadata": {"name": name, "version": version},
                  "spec": {"dependencies": {"tools": deps}} if deps else {}}
    conn.execute(sa.text(
        "INSERT INTO components (id, name, type, version, repository_id, repository_url, path, commit_hash, "
        "definition, tree_hash, release_tags, is_release) VALUES (:id, :name, 'TOOL', :version, :repo, :url, "
        ":path, :commit, CAST(:d AS jsonb), :tree, ARRAY[:tag], true)"),
        {"id": uuid.uuid4(), "name": name, "repo": repo_id, "url": url, "path": f"tools/{name}", "version": version,
         "commit": uuid.uuid5(uuid.NAMESPACE_URL, name + version).hex + "0" * 8, "d": json.dumps(definition),
         "tree": uuid.uuid5(uuid.NAMESPACE_DNS, name + version).hex + "0" * 8, "tag": f"{name}@{version}"})


def populate(engine: sa.Engine, *, n: int, versions: int, depth: int) -> None:
    easy_id, adv_id = uuid.uuid4(), uuid.uuid4()
    easy_url, adv_url = "https://github.com/bench/index", "https://github.com/bench/adversarial"
    with engine.begin() as conn:
        for rid, name, url in ((easy_id, "index", easy_url), (adv_id, "adversarial", adv_url)):
            conn.execute(sa.text("INSERT INTO repositories (id, name, url, type) VALUES (:id, :name, :url, 'TOOLS')"),
                         {"id": rid, "name": name, "url": url})
        conn.execute(sa.text(_EASY_SQL), {"repo_id": easy_id, "url": easy_url, "n": n, "versions": versions,
                                           "depth": depth})
        heads = [{"component": f"c{c:05d}", "version": "^1"} for c in range(0, n, depth)]
        _root_row(conn, easy_id, easy_url, "root", heads)
        conn.execute(sa.text(_ADV_SQL), {"repo_id": adv_id, "url": adv_url, "versions": versions, "depth": depth})
        ok = max(0, versions // 6)
        _root_row(conn, adv_id, adv_url, "adv-solvable",
                  [{"component": "x0", "version": "*"}, {"component": "z", "version": f"<=1.{ok}.0"}])
        # z 2.0.0 exists, but no x<last> accepts it: every x0 version must be refuted.
        _root_row(conn, adv_id, adv_url, "z", [], version="2.0.0")
        _root_row(conn, adv_id, adv_url, "adv-impossible",
                  [{"component": "x0", "version": "*"}, {"component": "z", "version": "^2"}])
        conn.execute(sa.text("ANALYZE components"))


def load_floor(engine: sa.Engine) -> int:
    """The candidate query alone: every column the index reads, every row, fetched."""
    from agentforge.services.lock import _component_rows_query
    from models import Repository

    with engine.connect() as conn:
        count = 0
        for repo_id in conn.execute(sa.select(Repository.id)).scalars():
            count += len(conn.execute(_component_rows_query(repo_id)).all())
        return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (200 × 5) for a smoke run")
    parser.add_argument("--components", type=int, default=None)
    parser.add_argument("--versions", type=int, default=None)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--profile", metavar="FILE",
                        help="write a pyinstrument HTML profile of the re-lock to FILE (needs pyinstrument)")
    args = parser.parse_args()
    n = args.components or (200 if args.quick else 2000)
    versions = args.versions or (5 if args.quick else 20)

    with scratch_database(_TMP) as url:
        os.environ["AGENTFORGE_DATABASE_URL"] = url
        from agentforge.config import reset_settings_cache

        reset_settings_cache()
        from agentforge.core.lockfile import render_lock
        from agentforge.db import get_engine
        from agentforge.errors import ResolutionError
        from agentforge.services import lock as lock_svc
        from models.migrate import ensure_schema

        engine = get_engine()
        ensure_schema(engine, auto_upgrade=True)
        _, t_insert = timed(lambda: populate(engine, n=n, versions=versions, depth=args.depth))
        rows, t_floor = timed(lambda: load_floor(engine))
        load_floor(engine)  # warm
        rows, t_floor = timed(lambda: load_floor(engine))
        print(f"index: {n} components × {versions} versions, depth-{args.depth} chains "
              f"({rows} rows, inserted in {t_insert:.2f} s)")
        print(f"load floor (candidate rows from Postgres): {t_floor:.3f} s")

        out, t_resolve = timed(lambda: lock_svc.resolve_root("index/root", compute_checksums=False,
                                                                       render=False))
        print(f"easy graph: {len(out.lock.packages)} packages resolved in {t_resolve:.3f} s "
              f"({t_resolve / t_floor:.1f}× the load floor)")
        path = _TMP / "forge-lock.yaml"

        def write() -> bool:
            return lock_svc.write_lock_file(path, render_lock(out.lock), lock=out.lock)

        _, t_write = timed(write)
        edges, t_persist = timed(lambda: lock_svc.persist_resolution(out.lock, composition_id=None))
        print(f"lock write (render + atomic write): {t_write:.3f} s ({path.stat().st_size // 1024} KiB); "
              f"component_dependencies: {edges} rows in {t_persist:.3f} s")

        # The full graph's lock (~650 bytes a package, over 1 MiB) is read back: a lock file has a
        # larger size limit than the documents people write (agentforge.core.lockfile.MAX_LOCK_BYTES).
        def read_back() -> int:
            return len(lock_svc.read_existing_lock(path).pins)

        import shutil

        from agentforge.config import get_settings

        def read_cold() -> int:
            shutil.rmtree(get_settings().home / "cache" / "locks", ignore_errors=True)
            return read_back()

        _, t_cold = timed(read_cold)
        _, t_read = timed(read_back)
        print(f"lock read back (parse + validate): {t_read:.3f} s from the parsed-lock cache, "
              f"{t_cold:.3f} s cold (YAML)")

        def relock() -> bool:
            existing = lock_svc.read_existing_lock(path)
            again = lock_svc.resolve_root("index/root", pins=existing.pins, previous=existing.lock,
                                          previous_text=existing.text)
            return lock_svc.write_lock_file(path, again.text, lock=again.lock)

        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler()
            profiler.start()
        changed, t_relock = timed(relock)
        if args.profile:
            profiler.stop()
            Path(args.profile).write_text(profiler.output_html())
            print(profiler.output_text(unicode=False, color=False)[:12000])
        print(f"re-lock, nothing changed: {t_relock:.3f} s ({len(out.lock.packages)} packages; "
              f"file rewritten: {changed})")

        solved, t_adv = timed(lambda: lock_svc.resolve_root("adversarial/adv-solvable", compute_checksums=False,
                                                                    render=False))
        z = next(p.version for p in solved.lock.packages.values() if p.component == "z")
        print(f"adversarial (solvable): z {z} after backtracking through {args.depth} levels in {t_adv:.3f} s")

        def impossible() -> str:
            try:
                lock_svc.resolve_root("adversarial/adv-impossible", compute_checksums=False, render=False)
            except ResolutionError as exc:
                return exc.message
            return "resolved?!"

        message, t_imp = timed(impossible)
        print(f"adversarial (no solution): explained in {t_imp:.3f} s: {message[:160]}…")

        goals = [("easy < 2 s", t_resolve < 2), ("easy within 5× load", t_resolve < 5 * t_floor),
                 ("adversarial < 10 s", max(t_adv, t_imp) < 10), ("re-lock < 1 s", t_relock < 1)]
        print("goals: " + ", ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in goals))
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
