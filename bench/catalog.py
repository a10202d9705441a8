"""Catalog benchmark: a plugin marketplace of P plugins / M markdown components, read cold.

    .venv/bin/python bench/catalog.py                  # P=300 plugins, M=2000 markdown components
    .venv/bin/python bench/catalog.py --quick          # P=30, M=200
    .venv/bin/python bench/catalog.py -p 100 -m 700

Measured, in one run, against the same bare repository (``file://``):

- catalog: ``RepositoryMirror.ensure() + fetch()`` (the mirror clone) and
  ``read_catalog_snapshot`` at the tip (detection, listing, every file read, records built
  and validated with ``parse_component``/``parse_composition``);
- raw git: ``git clone --mirror`` plus one ``git ls-tree -r`` and one ``git cat-file --batch``
  reading every ``.md``/``.json`` file;
- parsing: ``parse_markdown`` over every markdown file and ``json.loads`` over every JSON file
  (the part the raw git run does not do).

Each part is run ``--repeat`` times (default 3) and its best time kept.
Goal (issue 6): catalog ≤ 2 × (raw git + parsing). The ratio is printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FILLER = "Follow the project's conventions. Explain each change briefly.\n" * 30


def build_marketplace(root: Path, plugins: int, components: int) -> Path:
    """One commit (tagged v1.0.0): a marketplace.json and ``plugins`` plugin folders holding
    ``components`` markdown files in total (agents, commands, skills in turn)."""
    from agentforge.gitops import create_repository_from_snapshots

    src = root / "src"
    entries = []
    for p in range(plugins):
        name = f"plugin-{p:03d}"
        folder = src / "plugins" / name
        (folder / ".claude-plugin").mkdir(parents=True)
        (folder / ".claude-plugin" / "plugin.json").write_text(json.dumps(
            {"name": name, "version": f"1.{p % 7}.0", "description": f"Plugin {p}", "author": {"name": "Bench"}}))
        entries.append({"name": name, "source": f"./plugins/{name}", "category": "bench"})
    for c in range(components):
        p = c % plugins
        folder = src / "plugins" / f"plugin-{p:03d}"
        kind = c % 3
        # Every fourth description has an unquoted colon (invalid YAML, read leniently), as in real catalogs.
        colon = ":" if c % 4 == 0 else ","
        front = f"name: item-{c:04d}\ndescription: Component {c}{colon} does things, e.g. review\n"
        if kind == 0:
            path = folder / "agents" / f"agent-{c:04d}.md"
            front += "model: sonnet\ntools: Read, Grep, Glob\n"
        elif kind == 1:
            path = folder / "commands" / f"cmd-{c:04d}.md"
            front += "argument-hint: [target]\n"
        else:
            path = folder / "skills" / f"skill-{c:04d}" / "SKILL.md"
            front += "license: MIT\nmetadata:\n  version: 2.0.0\n"
            path.parent.mkdir(parents=True, exist_ok=True)
            (path.parent / "helper.py").write_text(f"print({c})\n")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"---\n{front}---\n# Item {c}\n{FILLER}")
    (src / ".claude-plugin").mkdir(parents=True)
    (src / ".claude-plugin" / "marketplace.json").write_text(json.dumps(
        {"name": "bench", "owner": {"name": "Bench"}, "plugins": entries}, indent=1))
    bare = root / "remote.git"
    create_repository_from_snapshots(bare, [(src, ["v1.0.0"])])
    return bare


def raw_git(bare: Path, dest: Path) -> list[tuple[str, bytes]]:
    subprocess.run(["git", "clone", "-q", "--mirror", bare.as_uri(), str(dest)], check=True)
    listing = subprocess.run(["git", "--git-dir", str(dest), "ls-tree", "-r", "-z", "HEAD"], check=True,
                             capture_output=True).stdout
    wanted: list[tuple[str, str]] = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        path = name.decode()
        if path.endswith((".md", ".json")):
            wanted.append((path, meta.split()[2].decode()))
    batch = subprocess.run(["git", "--git-dir", str(dest), "cat-file", "--batch"], check=True, capture_output=True,
                           input="".join(f"{sha}\n" for _, sha in wanted).encode()).stdout
    out: list[tuple[str, bytes]] = []
    pos = 0
    for path, _ in wanted:
        header_end = batch.index(b"\n", pos)
        size = int(batch[pos:header_end].split()[2])
        out.append((path, batch[header_end + 1: header_end + 1 + size]))
        pos = header_end + 1 + size + 1
    return out


def parse_all(files: list[tuple[str, bytes]]) -> None:
    from agentforge.catalogs import parse_markdown

    for path, data in files:
        if path.endswith(".md"):
            parse_markdown(data, source=path)
        else:
            json.loads(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-p", type=int, default=300, help="plugins")
    parser.add_argument("-m", type=int, default=2000, help="markdown components")
    parser.add_argument("--quick", action="store_true", help="P=30, M=200")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best time of each part is kept")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    plugins, components = (30, 200) if args.quick else (args.p, args.m)

    from agentforge.catalogs import read_catalog_snapshot
    from agentforge.gitops import RepositoryMirror

    work = Path(tempfile.mkdtemp(prefix="agentforge-bench-catalog-"))
    try:
        t0 = time.perf_counter()
        bare = build_marketplace(work, plugins, components)
        build_s = time.perf_counter() - t0

        raw_s = parse_s = clone_s = read_s = float("inf")
        for run in range(args.repeat):  # best of N: the machine may be busy with other work
            t0 = time.perf_counter()
            files = raw_git(bare, work / f"raw{run}.git")
            raw_s = min(raw_s, time.perf_counter() - t0)
            t0 = time.perf_counter()
            parse_all(files)
            parse_s = min(parse_s, time.perf_counter() - t0)

            t0 = time.perf_counter()
            mirror = RepositoryMirror(work / f"mirror{run}.git", bare.as_uri())
            mirror.ensure()
            mirror.fetch()
            clone_s = min(clone_s, time.perf_counter() - t0)
            tip = mirror.local_refs()["refs/heads/main"]
            t0 = time.perf_counter()
            snap = read_catalog_snapshot(mirror, tip, label="main")
            read_s = min(read_s, time.perf_counter() - t0)
            mirror.close()

        assert snap.fatal is None, snap.fatal
        ours = clone_s + read_s
        baseline = raw_s + parse_s
        print(f"repository: {plugins} plugins, {components} markdown components, {len(files)} .md/.json files "
              f"(built in {build_s:.1f} s)")
        print(f"records: {len(snap.components)} components, {len(snap.compositions)} compositions, "
              f"{len(snap.problems)} problems")
        print(f"raw git (clone --mirror + ls-tree + cat-file --batch): {raw_s:.3f} s")
        print(f"parsing (parse_markdown / json.loads):              {parse_s:.3f} s")
        print(f"catalog: mirror clone {clone_s:.3f} s + read_catalog_snapshot {read_s:.3f} s = {ours:.3f} s")
        print(f"ratio catalog / (raw git + parsing) = {ours / baseline:.2f}  (goal ≤ 2.0)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
