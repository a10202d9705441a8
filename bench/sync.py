"""Sync benchmark: N repositories × M components × T tags, against raw git doing the same fetches.

    .venv/bin/python bench/sync.py                 # N=50, M=20, T=5
    .venv/bin/python bench/sync.py --quick         # N=5, M=4, T=2
    .venv/bin/python bench/sync.py -n 20 -m 10 -t 3
    .venv/bin/python bench/sync.py --prefect-defaults   # against a stock Prefect server

Measured in one run, with a warm Prefect API (``prefect server start`` on a free 127.0.0.1
port, started first and timed separately, with the server settings docs/scale-out.md recommends:
``deployments.prefect_server``; ``--prefect-defaults`` starts it with Prefect's stock settings)
and a fresh database (``AGENTFORGE_DATABASE_URL``
when set, else an embedded server under a temporary home; its start-up is not counted):

- cold sync, the way ``agentforge sync`` runs it (``run_sync``: the batched ls-remote and its
  records in-process, then the real Prefect flow for the repositories to sync: mirror clone,
  read every tagged commit, write rows),
- no-op re-sync (nothing changed upstream), both the ``agentforge sync`` way (no flow run is
  needed, so none starts) and as the standalone flow a schedule runs (one flow run, its two
  tasks), so the fixed cost of a Prefect flow run shows separately,
- raw git: a serial ``git clone --mirror`` loop and a serial ``git ls-remote`` loop over the same repos,
- parsing: ``parse_component`` over every component document once per tagged commit (the
  part of a cold sync that raw git does not do).

Goals (issue 3): cold ≤ 1.5 × (clone loop + parsing); no-op ≤ 2 × ls-remote loop (judged on
the ``agentforge sync`` path; the standalone flow's figure is printed beside it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _component(name: str, version: str) -> str:
    return (f"apiVersion: forge.dev/v1\nkind: Tool\nmetadata:\n  name: {name}\n  version: {version}\n"
            f"  description: benchmark tool {name}\nspec:\n  type: function\n  runtime: python\n"
            "  schema:\n    input: {type: object, properties: {q: {type: string}}}\n"
            "    output: {type: object}\n")


def build_repositories(root: Path, n: int, m: int, t: int) -> list[Path]:
    """N bare repositories, each with T commits (one per tag v1.<k>.0) changing every component."""
    from agentforge.gitops import create_repository_from_snapshots

    out: list[Path] = []
    for i in range(n):
        snapshots: list[tuple[Path, list[str]]] = []
        for k in range(t):
            folder = root / "src" / f"repo{i:03d}" / f"s{k}"
            for j in range(m):
                comp = folder / "tools" / f"tool-{j:02d}"
                comp.mkdir(parents=True, exist_ok=True)
                (comp / "component.yaml").write_text(_component(f"tool-{j:02d}", f"1.{k}.0"))
                (comp / "main.py").write_text(f"# repo {i} tool {j} release {k}\n")
            snapshots.append((folder, [f"v1.{k}.0"]))
        bare = root / "remotes" / f"repo{i:03d}.git"
        create_repository_from_snapshots(bare, snapshots)
        out.append(bare)
    shutil.rmtree(root / "src", ignore_errors=True)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_prefect(home: Path, *, stock: bool = False) -> tuple[subprocess.Popen[bytes], str, float]:
    """``prefect server start`` on a free port: with the settings docs/scale-out.md recommends
    (``deployments.prefect_server.RECOMMENDED_SERVER_ENV``), or Prefect's own with ``stock``."""
    from deployments.prefect_server import RECOMMENDED_SERVER_ENV

    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false"}
    for name in RECOMMENDED_SERVER_ENV:
        env.pop(name, None)
    if not stock:
        env.update(RECOMMENDED_SERVER_ENV)
    started = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host",
                             "127.0.0.1", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as resp:
                if resp.status == 200:
                    return proc, url, time.perf_counter() - started
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("Prefect server did not start within 180 s")


def warm_prefect_client() -> float:
    """Seconds of the client's one-time Prefect start-up in this process: one trivial flow run
    with one task (Prefect's lazy imports — fastapi for parameter serialisation —, the API version
    check, the events client's connection). ``agentforge sync`` in a new process pays this once
    (and without PREFECT_API_URL also the in-process server's start-up); the bench reports it
    beside the server's start-up and times the cold sync after it."""
    from prefect import flow, task
    from prefect.cache_policies import NONE

    from agentforge.cli.common import run_flow

    @task(name="bench-warm-up-task", cache_policy=NONE)
    def warm_task() -> int:
        return 1

    @flow(name="bench-warm-up")
    def warm_flow(names: list[str] | None = None) -> int:  # a parameter: serialising one imports fastapi
        return int(warm_task.submit().result())

    return timed(lambda: run_flow(warm_flow, names=["warm-up"]))


def prefect_cpu(proc: subprocess.Popen[bytes]) -> Callable[[], float]:
    """Seconds of CPU the Prefect server (and its children) used so far; -1 without psutil."""
    try:
        import psutil  # installed with pgserver
    except ImportError:
        return lambda: -1.0
    server = psutil.Process(proc.pid)

    def used() -> float:
        try:
            return sum(sum(p.cpu_times()[:2]) for p in [server, *server.children(recursive=True)])
        except psutil.Error:
            return -1.0

    return used


def timed(fn: object) -> float:
    return timed_call(fn)[0]


def timed_call(fn: object) -> tuple[float, list[object]]:
    """(seconds, what ``fn`` returned) for a call returning a list of results."""
    started = time.perf_counter()
    out = fn()  # type: ignore[operator]
    return time.perf_counter() - started, list(out) if isinstance(out, list) else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=50, help="repositories")
    parser.add_argument("-m", type=int, default=20, help="components per repository")
    parser.add_argument("-t", type=int, default=5, help="tags (release commits) per repository")
    parser.add_argument("--quick", action="store_true", help="small sizes (N=5, M=4, T=2)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of raw git + agentforge from nothing (figures: best of them; "
                             "default 3, 1 with --quick)")
    parser.add_argument("--prefect-defaults", action="store_true",
                        help="run the Prefect server with Prefect's stock settings instead of the ones "
                             "docs/scale-out.md recommends (batched task-run recorder writes)")
    parser.add_argument("--profile", metavar="FILE",
                        help="write a pyinstrument HTML profile of the cold sync to FILE (needs pyinstrument)")
    args = parser.parse_args()
    n, m, t = (5, 4, 2) if args.quick else (args.n, args.m, args.t)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3

    work = Path(tempfile.mkdtemp(prefix="agentforge-bench-"))
    os.environ["AGENTFORGE_HOME"] = str(work / "home")
    os.environ["AGENTFORGE_CONFIG_FILE"] = str(work / "config.toml")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    prefect_proc: subprocess.Popen[bytes] | None = None
    try:
        t0 = time.perf_counter()
        repos = build_repositories(work / "git", n, m, t)
        build_s = time.perf_counter() - t0
        urls = [p.as_uri() for p in repos]

        prefect_proc, api_url, prefect_start_s = start_prefect(work, stock=args.prefect_defaults)
        os.environ["PREFECT_API_URL"] = api_url

        from agentforge.cli.common import engine
        from agentforge.core.documents import parse_component
        from agentforge.services.repos import add_repository

        t0 = time.perf_counter()
        engine()  # database up and migrated (embedded start-up is not part of the sync)
        db_start_s = time.perf_counter() - t0
        for url in urls:
            add_repository(url, check=False)

        git_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        raw_dest = work / "raw-mirrors"

        def clone_loop() -> None:
            raw_dest.mkdir()
            for i, url in enumerate(urls):
                subprocess.run(["git", "clone", "--mirror", "-q", url, str(raw_dest / f"{i}.git")], check=True,
                               env=git_env)

        def ls_remote_loop() -> None:
            for url in urls:
                subprocess.run(["git", "ls-remote", url], check=True, env=git_env, stdout=subprocess.DEVNULL)

        docs = [_component(f"tool-{j:02d}", f"1.{k}.0").encode() for j in range(m) for k in range(t)]

        def parse_all() -> None:
            for _ in range(n):
                for doc in docs:
                    parse_component(doc, source="component.yaml")

        import sqlalchemy as sa

        t0 = time.perf_counter()
        from agentforge.cli.repo_cmds import run_sync
        from flows.sync import sync_repositories

        client_start_s = time.perf_counter() - t0 + warm_prefect_client()

        def reset() -> None:
            """Back to never-synced: no mirrors, no rows, the repositories registered anew."""
            shutil.rmtree(raw_dest, ignore_errors=True)
            shutil.rmtree(work / "home" / "mirrors", ignore_errors=True)
            with engine().begin() as conn:
                conn.execute(sa.text("TRUNCATE repositories CASCADE"))
            for url in urls:
                add_repository(url, check=False)

        from concurrent.futures import ThreadPoolExecutor

        from agentforge.config import get_settings
        from agentforge.parsepool import offload
        from agentforge.services import sync as svc

        def without_prefect() -> list[object]:
            """The same work as the cold sync's tasks, in a plain thread pool of the same size."""
            plan = svc.check_and_record(None)
            with offload(len(plan.to_sync)), ThreadPoolExecutor(get_settings().sync_concurrency) as pool:
                return list(pool.map(lambda i: svc.sync_repository(i, remote=plan.remote.get(i)), plan.to_sync))

        assert prefect_proc is not None
        server_cpu = prefect_cpu(prefect_proc)
        rounds: dict[str, list[float]] = {k: [] for k in ("clone", "ls_remote", "parse", "cold", "noop", "noop_flow",
                                                          "no_prefect", "server_cpu")}
        synced = unchanged = unchanged_flow = rows = 0
        for rnd in range(args.rounds):
            if rnd:
                reset()
            # Raw and ours in the same round, so both see the same machine (a 2-core VM's speed drifts).
            rounds["clone"].append(timed(clone_loop))
            rounds["ls_remote"].append(timed(ls_remote_loop))
            rounds["parse"].append(timed(parse_all))
            profiling = bool(args.profile) and rnd == 0
            if profiling:
                from pyinstrument import Profiler

                profiler = Profiler(async_mode="disabled")
                profiler.start()
            cpu_before = server_cpu()
            cold_round_s, results = timed_call(lambda: run_sync(None))
            rounds["cold"].append(cold_round_s)
            rounds["server_cpu"].append(server_cpu() - cpu_before)
            if profiling:
                profiler.stop()
                Path(args.profile).write_text(profiler.output_html())
                print(profiler.output_text(unicode=False, color=False, show_all=False)[:20000])
            synced = sum(1 for r in results if getattr(r, "status", "") == "synced")
            noop_round_s, noop_results = timed_call(lambda: run_sync(None))
            rounds["noop"].append(noop_round_s)
            unchanged = sum(1 for r in noop_results if getattr(r, "status", "") == "unchanged")
            flow_round_s, flow_results = timed_call(sync_repositories)
            rounds["noop_flow"].append(flow_round_s)
            unchanged_flow = sum(1 for r in flow_results if getattr(r, "status", "") == "unchanged")
            with engine().connect() as conn:
                rows = int(conn.execute(sa.text("SELECT count(*) FROM components")).scalar() or 0)
            if synced != n or unchanged != n:
                raise SystemExit(f"round {rnd + 1}: {synced}/{n} synced cold, {unchanged}/{n} unchanged on re-sync")
            reset()
            no_prefect_s, plain = timed_call(without_prefect)
            rounds["no_prefect"].append(no_prefect_s)
            if sum(1 for r in plain if getattr(r, "status", "") == "synced") != n:
                raise SystemExit(f"round {rnd + 1}: the sync without Prefect did not sync every repository")

        best = {k: min(v) for k, v in rounds.items()}
        median = {k: statistics.median(v) for k, v in rounds.items()}
        clone_s, ls_remote_s, parse_s = best["clone"], best["ls_remote"], best["parse"]
        cold_s, noop_s, noop_flow_s = best["cold"], best["noop"], best["noop_flow"]
        cold_goal = 1.5 * (clone_s + parse_s)
        noop_goal = 2.0 * ls_remote_s
        print(f"\nAgentForge sync benchmark: N={n} repositories × M={m} components × T={t} tags "
              f"({rows} component rows; {synced}/{n} synced cold, {unchanged}/{n} unchanged on re-sync, "
              f"{unchanged_flow}/{n} unchanged by the standalone flow)")
        print(f"setup (not measured against goals): build repos {build_s:.2f} s, Prefect server start-up "
              f"{prefect_start_s:.2f} s, Prefect client start-up (imports + a first one-task flow run in this "
              f"process) {client_start_s:.2f} s, database ready {db_start_s:.2f} s")
        print("Prefect server: " + ("Prefect's stock settings (--prefect-defaults)" if args.prefect_defaults else
                                    "the settings docs/scale-out.md recommends (task-run recorder batched; "
                                    "--prefect-defaults for Prefect's own)"))
        print(f"{args.rounds} rounds, each raw git then agentforge from nothing; best of the rounds "
              f"(median in brackets)\n")
        header = f"{'measure':<34}{'seconds':>9}{'baseline':>10}{'ratio':>8}{'goal':>7}  verdict"
        print(header)
        print("-" * len(header))

        def figure(key: str) -> str:
            return f"{best[key]:>9.2f}  [{median[key]:.2f}]" if args.rounds > 1 else f"{best[key]:>9.2f}"

        print(f"{'git clone --mirror loop (raw)':<34}{figure('clone')}")
        print(f"{'git ls-remote loop (raw)':<34}{figure('ls_remote')}")
        print(f"{'parse every component document':<34}{figure('parse')}")
        cold_ratio = cold_s / (clone_s + parse_s)
        noop_ratio = noop_s / ls_remote_s
        print(f"{'cold sync (agentforge sync)':<34}{cold_s:>9.2f}{clone_s + parse_s:>10.2f}{cold_ratio:>8.2f}"
              f"{1.5:>7.1f}  {'OK' if cold_s <= cold_goal else 'MISSED'}")
        print(f"{'no-op re-sync (agentforge sync)':<34}{noop_s:>9.2f}{ls_remote_s:>10.2f}{noop_ratio:>8.2f}"
              f"{2.0:>7.1f}  {'OK' if noop_s <= noop_goal else 'MISSED'}")
        print(f"{'no-op re-sync (standalone flow)':<34}{noop_flow_s:>9.2f}{ls_remote_s:>10.2f}"
              f"{noop_flow_s / ls_remote_s:>8.2f}{'-':>7}  (a scheduled run: one flow run, no repository task)")
        print(f"{'same work without Prefect (threads)':<34}{best['no_prefect']:>9.2f}{clone_s + parse_s:>10.2f}"
              f"{best['no_prefect'] / (clone_s + parse_s):>8.2f}{'-':>7}  (services.sync.sync_repository in "
              f"{get_settings().sync_concurrency} threads: what the flow's tasks run)")
        if rounds["server_cpu"][0] >= 0:
            print(f"CPU the Prefect server used during the cold sync (same machine): {best['server_cpu']:.2f} s "
                  f"[median {median['server_cpu']:.2f} s] for {n} task runs")
        if args.rounds > 1:
            med_cold = median["cold"] / (median["clone"] + median["parse"])
            med_noop = median["noop"] / median["ls_remote"]
            print(f"medians: cold {median['cold']:.2f} s = {med_cold:.2f} × raw, "
                  f"no-op {median['noop']:.2f} s = {med_noop:.2f} × raw; "
                  f"cold sync per round: {', '.join(f'{v:.2f}' for v in rounds['cold'])}")
    finally:
        if prefect_proc is not None:
            prefect_proc.terminate()
            try:
                prefect_proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                prefect_proc.kill()
        try:
            from agentforge.db import dispose_engines

            dispose_engines()
        except Exception:  # best effort at exit
            pass
        if not args.keep:
            from _scratch import stop_embedded  # bench/ is the script's folder

            stop_embedded(work / "home" / "pgdata")  # the embedded server outlives its process by design
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
