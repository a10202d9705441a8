"""Run every benchmark under ``bench/`` and print one table: figure, value, goal, ratio.

    .venv/bin/python bench/run.py              # full sizes (several minutes)
    .venv/bin/python bench/run.py --quick      # every benchmark with --quick
    .venv/bin/python bench/run.py --only sync read_path

Each benchmark runs as its own process (its own scratch database and home), its output is
kept under ``--keep DIR`` when asked, and its figures are read back: a benchmark may print a
``BENCH {json}`` line (``read_path`` does); the older ones (``sync``, ``resolve``,
``catalog``) print text tables, read here by small per-benchmark parsers — when one of them
changes its wording the table shows ``unparsed`` rather than a wrong figure. The header names
the machine (nproc, memory, Python, PostgreSQL) so figures can be compared fairly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


@dataclass
class Figure:
    benchmark: str
    figure: str
    value: float | None  # seconds
    goal: str  # e.g. "≤ 1.5 × raw", "< 2 s"
    ratio: float | None  # value / raw baseline, when the goal is relative
    verdict: str = ""


def _num(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


def _verdict(ratio: float | None, limit: float | None) -> str:
    if ratio is None or limit is None:
        return ""
    return "met" if ratio <= limit else "MISSED"


def parse_sync(text: str) -> list[Figure]:
    out = []
    for label, goal in (("cold sync (agentforge sync)", 1.5), ("no-op re-sync (agentforge sync)", 2.0),
                        ("no-op re-sync (standalone flow)", None), ("same work without Prefect (threads)", None)):
        match = re.search(re.escape(label) + r"\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", text)
        if match:
            ratio = float(match.group(3))
            out.append(Figure("sync", label, float(match.group(1)),
                              f"≤ {goal:g} × raw" if goal else "-", ratio, _verdict(ratio, goal)))
    return out


def parse_resolve(text: str) -> list[Figure]:
    out = []
    easy = re.search(r"easy graph: (\d+) packages resolved in ([\d.]+) s \(([\d.]+)× the load floor\)", text)
    if easy:
        seconds, ratio = float(easy.group(2)), float(easy.group(3))
        out.append(Figure("resolve", f"resolve easy graph ({easy.group(1)} packages)", seconds,
                          "< 2 s and ≤ 5 × load floor", ratio,
                          "met" if seconds < 2 and ratio <= 5 else "MISSED"))
    for label, pattern, limit in (
            ("re-lock, nothing changed", r"re-lock, nothing changed: ([\d.]+) s", 1.0),
            ("adversarial (solvable)", r"adversarial \(solvable\):.* in ([\d.]+) s", 10.0),
            ("adversarial (no solution)", r"adversarial \(no solution\): explained in ([\d.]+) s", 10.0),
            ("lock write", r"lock write \(render \+ atomic write\): ([\d.]+) s", None)):
        value = _num(pattern, text)
        if value is not None:
            out.append(Figure("resolve", label, value, f"< {limit:g} s" if limit else "-", None,
                              ("met" if value < limit else "MISSED") if limit else ""))
    return out


def parse_catalog(text: str) -> list[Figure]:
    ratio = _num(r"ratio catalog / \(raw git \+ parsing\) = ([\d.]+)", text)
    value = _num(r"catalog: .*= ([\d.]+) s", text)
    if ratio is None:
        return []
    return [Figure("catalog", "catalog read cold (clone + read)", value, "≤ 2 × raw", ratio, _verdict(ratio, 2.0))]


def parse_bench_line(name: str, text: str) -> list[Figure] | None:
    line = next((ln for ln in reversed(text.splitlines()) if ln.startswith("BENCH ")), None)
    if line is None:
        return None
    out = []
    for f in json.loads(line[len("BENCH "):])["figures"]:
        ratio = f["value"] / f["baseline"] if f.get("baseline") else None
        goal = (f"≤ {f['goal']:g} × raw" if f.get("goal")
                else "(no goal)" if f.get("baseline") else "(raw baseline)")
        out.append(Figure(name, f["figure"], f["value"], goal, ratio, _verdict(ratio, f.get("goal"))))
    return out


PARSERS: dict[str, Callable[[str], list[Figure]]] = {
    "sync": parse_sync, "resolve": parse_resolve, "catalog": parse_catalog,
}


def machine() -> str:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    pg = "?"
    try:
        pg = subprocess.run([sys.executable, "-c", "import pgserver, pathlib; p = pathlib.Path(pgserver.__file__)"
                             ".parent / 'pginstall' / 'bin' / 'postgres'; import subprocess; "
                             "print(subprocess.run([str(p), '--version'], capture_output=True, text=True).stdout)"],
                            capture_output=True, text=True, timeout=30).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        pass
    if os.environ.get("AGENTFORGE_TEST_DATABASE_URL"):
        pg += " (AGENTFORGE_TEST_DATABASE_URL server)"
    return (f"nproc {os.cpu_count()}, memory {mem_kb / 1024 / 1024:.1f} GiB, Python {platform.python_version()}, "
            f"{pg}, {platform.system()} {platform.release()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument("--only", nargs="*", help="benchmark names (default: every bench/*.py but run.py and _helpers)")
    parser.add_argument("--keep", type=Path, help="write each benchmark's full output to DIR/<name>.txt")
    args = parser.parse_args()
    names = args.only or sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "run" and not p.stem.startswith("_"))
    figures: list[Figure] = []
    for name in names:
        command = [sys.executable, str(BENCH / f"{name}.py"), *(["--quick"] if args.quick else [])]
        print(f"running {name} …", file=sys.stderr, flush=True)
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - start
        text = proc.stdout + proc.stderr
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            (args.keep / f"{name}.txt").write_text(text)
        found = parse_bench_line(name, proc.stdout)
        if found is None:
            found = PARSERS[name](text) if name in PARSERS else []
        if proc.returncode != 0:
            found.append(Figure(name, f"exit {proc.returncode}: {text.strip().splitlines()[-1:]}", None, "-", None,
                                "FAILED"))
        elif not found:
            found.append(Figure(name, "unparsed output (see --keep)", None, "-", None, "?"))
        figures += found
        print(f"  {name}: {wall:.1f} s wall", file=sys.stderr)

    print(f"\nmachine: {machine()}")
    print(f"sizes: {'--quick' if args.quick else 'full'}\n")
    header = f"{'benchmark':<10} {'figure':<44} {'value (s)':>10} {'ratio':>7}  {'goal':<28} verdict"
    print(header)
    print("-" * len(header))
    for f in figures:
        value = f"{f.value:10.3f}" if f.value is not None else f"{'-':>10}"
        ratio = f"{f.ratio:7.2f}" if f.ratio is not None else f"{'':>7}"
        print(f"{f.benchmark:<10} {f.figure:<44} {value} {ratio}  {f.goal:<28} {f.verdict}")
    return 1 if any(f.verdict == "FAILED" for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
