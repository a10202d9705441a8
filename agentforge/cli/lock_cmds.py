"""`lock`, `install` and `deps tree|why|graph`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from agentforge.cli.common import engine, prepare_prefect, run_flow
from agentforge.cli.output import STATE, console, emit, table

deps_app = typer.Typer(help="Inspect dependency graphs.", no_args_is_help=True)


def _prepare_flows() -> None:
    """Prefect set up for a command whose user errors are printed by the CLI's error boundary.

    A failing task is logged by Prefect at ERROR with a traceback; the CLI prints the same
    error as `agentforge: CODE` + hint, so without --verbose Prefect logs only CRITICAL.
    """
    if not STATE.verbose:
        os.environ["PREFECT_LOGGING_LEVEL"] = "CRITICAL"
        os.environ["PREFECT_LOGGING_LOGGERS_PREFECT_LEVEL"] = "CRITICAL"
    prepare_prefect()


def lock(
    root: str = typer.Argument(..., help="COMPONENT[@CONSTRAINT], REPO/COMPONENT[@CONSTRAINT] or a composition"),
    output: Path = typer.Option(Path("forge-lock.yaml"), "-o", "--output", help="Lock file to write"),
    upgrade: bool = typer.Option(False, "--upgrade", "-U", help="Allow newer versions of everything"),
    upgrade_package: list[str] = typer.Option([], "--upgrade-package", "-P",
                                              help="Allow a newer version of this component (repeatable)"),
    check: bool = typer.Option(False, "--check", help="Exit 1 with the reason when the lock is stale or wrong"),
    dev: bool = typer.Option(False, "--dev", help="Resolve the root's dev dependencies too"),
) -> None:
    """Resolve ROOT to exact commits and write a deterministic lock file."""
    if check:
        from agentforge.services.lock import check_lock

        engine()
        result = check_lock(root, output, include_dev=dev)
        emit(result.model_dump(), f"{output} is up to date and matches the mirrors" if result.ok else
             "\n".join([f"{output} is not valid for {root}:"] + [f"  - {r}" for r in result.reasons]))
        if not result.ok:
            # SystemExit, not typer.Exit: the entry point runs click with standalone_mode=False,
            # which turns typer.Exit into a return value that would be lost.
            sys.exit(1)
        return
    engine()
    from agentforge.services.lock import ensure_root_known, read_existing_lock

    ensure_root_known(root)  # a typo fails in a second, before Prefect starts
    existing = read_existing_lock(output)  # so does a lock file that cannot be read (conflict markers are fine)
    wanted = root.partition("@")[0].rpartition("/")[2]
    if existing.lock is not None and existing.lock.root.name != wanted:
        from agentforge.errors import LockError

        raise LockError(f"{output} locks {existing.lock.root.kind} {existing.lock.root.name}, not {wanted}; "
                        "writing it would replace that lock", code="LOCK_WRONG_ROOT",
                        hint=f"Pass -o FILE for {wanted}'s lock (e.g. -o {wanted}-lock.yaml).")
    _prepare_flows()
    from agentforge.cli.config_cmds import auto_sync_before

    auto_sync_before("lock")
    from flows.lock import resolve_and_lock

    ups: list[str] | None = [] if upgrade else (list(upgrade_package) or None)
    written = run_flow(resolve_and_lock, root=root, output=str(output), include_dev=dev, upgrade=ups)
    verb = "Wrote" if written.changed else "Unchanged:"
    lines = [f"{verb} {output} ({written.packages} packages, {written.content_hash[:19]}…)"]
    lines += [f"  optional dependency skipped: {s}" for s in written.skipped]
    emit(written.model_dump(), "\n".join(lines))


def install(
    root: str = typer.Argument(..., help="COMPONENT[@CONSTRAINT] or a composition"),
    lock_file: Path = typer.Option(Path("forge-lock.yaml"), "--lock", help="Lock file to read (and write)"),
    frozen: bool = typer.Option(False, "--frozen", "--locked", help="Install exactly the lock; change nothing "
                                                                    "if it is missing, stale or mismatching"),
    dev: bool = typer.Option(False, "--dev", help="Include the root's dev dependencies"),
    target: Path | None = typer.Option(None, "--target", help="Install here instead of the install root"),
    force: bool = typer.Option(False, "--force", help="Replace folders holding local modifications or files "
                                                     "AgentForge did not install (they are lost)"),
) -> None:
    """Install ROOT's locked components (files at exact commits, checksums verified)."""
    engine()
    from agentforge.errors import LockError
    from agentforge.services.lock import ensure_root_known, read_existing_lock

    ensure_root_known(root)
    if frozen and not lock_file.exists():
        raise LockError(f"{lock_file} does not exist; --frozen installs only what a lock says",
                        code="LOCK_MISSING", hint=f"Run `agentforge lock {root}` first, or drop --frozen.")
    read_existing_lock(lock_file)
    _prepare_flows()
    from agentforge.cli.config_cmds import auto_sync_before

    auto_sync_before("install")
    from flows.lock import install as install_flow

    result = run_flow(install_flow, root=root, lock_path=str(lock_file), frozen=frozen, include_dev=dev,
                      target=str(target) if target else None, force=force)
    inst = result["install"]
    if STATE.json:
        emit(result)
        return
    if result["lock"]:
        console.print(f"Locked {root} → {lock_file}")
    console.print(table(["component", "version", "commit", "path"],
                        [(p["component"], p["version"], p["commit"][:12], p["path"]) for p in inst["packages"]],
                        title=f"installed {inst['root']} into {inst['target']}"))
    if inst["unchanged"]:
        console.print(f"{inst['unchanged']} already installed as locked")


def _resolve_for_display(root: str, dev: bool) -> Any:
    from agentforge.services.lock import resolve_root

    engine()
    return resolve_root(root, include_dev=dev, compute_checksums=False, render=False)


@deps_app.command("tree")
def deps_tree(root: str = typer.Argument(...), dev: bool = typer.Option(False, "--dev")) -> None:
    """The resolved dependency tree of ROOT, with versions and dependency types."""
    from rich.tree import Tree

    outcome = _resolve_for_display(root, dev)
    lock = outcome.lock
    children: dict[str, list[str]] = {}
    for key, pkg in lock.packages.items():
        for declarer in pkg.constraints:
            children.setdefault(declarer, []).append(key)
    if STATE.json:
        # Checksums are not computed for a display (no file reads): left out rather than shown as zeros.
        emit({"root": lock.root.model_dump(),
              "packages": {k: p.model_dump(exclude={"checksum"}) for k, p in lock.packages.items()},
              "children": {k: sorted(v) for k, v in children.items()}})
        return
    root_key = next((k for k, p in lock.packages.items() if p.dependency_type == "root"), "<root>")
    tree = Tree(f"[bold]{lock.root.name}[/] {lock.root.version} ({lock.root.kind})")

    def add(node: Tree, key: str, seen: frozenset[str]) -> None:
        for child in sorted(children.get(key, [])):
            pkg = lock.packages[child]
            label = f"{pkg.component} {pkg.version} [dim]{pkg.kind}, {pkg.dependency_type}" \
                    f"{', optional' if pkg.optional else ''}, needs {pkg.constraints.get(key, '*')}[/]"
            if child in seen:
                node.add(label + " [red](cycle)[/]")
                continue
            add(node.add(label), child, seen | {child})

    add(tree, root_key, frozenset({root_key}))
    if root_key != "<root>":
        add(tree, "<root>", frozenset({root_key}))
    console.print(tree)
    for s in outcome.skipped:
        console.print(f"  optional, skipped: {s}")


@deps_app.command("why")
def deps_why(component: str = typer.Argument(...),
             lock_file: Path = typer.Option(Path("forge-lock.yaml"), "--lock", help="Lock file to explain")) -> None:
    """Why is COMPONENT in the lock: who asks for it, with which constraint, by which path."""
    from agentforge.errors import NotFound
    from agentforge.services.lock import read_existing_lock

    existing = read_existing_lock(lock_file)
    if existing.lock is None:
        raise NotFound(f"{lock_file} does not exist or is conflicted", code="LOCK_MISSING",
                       hint="Run `agentforge lock ROOT` first.")
    hits = {k: p for k, p in existing.lock.packages.items() if p.component == component or k == component}
    if not hits:
        raise NotFound(f"{component!r} is not in {lock_file}",
                       hint="Packages: " + ", ".join(sorted(p.component for p in existing.lock.packages.values())))
    data: list[dict[str, Any]] = [
        {"key": k, "version": p.version, "dependency_type": p.dependency_type, "constraints": p.constraints,
         "resolution_path": p.resolution_path} for k, p in sorted(hits.items())]
    if STATE.json:
        emit(data)
        return
    for d in data:
        console.print(f"[bold]{d['key']}[/] {d['version']} ({d['dependency_type']})")
        for who, c in d["constraints"].items():
            console.print(f"  required by {who.rpartition('/')[2] or who} with {c}")
        console.print("  path: " + " → ".join(p.rpartition('/')[2] or p for p in d["resolution_path"]))


@deps_app.command("graph")
def deps_graph(root: str = typer.Argument(...),
               format: str = typer.Option("dot", "--format", help="dot | mermaid | json"),
               dev: bool = typer.Option(False, "--dev")) -> None:
    """The dependency graph of ROOT as Graphviz dot, Mermaid or JSON."""
    from agentforge.errors import AgentForgeError

    if format not in ("dot", "mermaid", "json"):
        raise AgentForgeError(f"--format {format!r} is not one of dot, mermaid, json", code="FORMAT_INVALID",
                              hint="For example `--format mermaid` (renders in Markdown) or `--format json`.")
    lock = _resolve_for_display(root, dev).lock
    nodes = {k: f"{p.component} {p.version}" for k, p in lock.packages.items()}
    # A component root is a package itself: its "<root>" edges start at its node.
    root_key = next((k for k, p in lock.packages.items() if p.dependency_type == "root"), "<root>")
    nodes.setdefault(root_key, f"{lock.root.name} {lock.root.version}")
    edges = sorted((root_key if d == "<root>" else d, k, c)
                   for k, p in lock.packages.items() for d, c in p.constraints.items())
    if format == "json":
        print_json({"nodes": nodes, "edges": [{"from": a, "to": b, "constraint": c} for a, b, c in edges]})
        return
    ids = {k: f"n{i}" for i, k in enumerate(sorted(nodes))}
    if format == "dot":
        lines = ["digraph dependencies {", "  rankdir=LR;"]
        lines += [f'  {ids[k]} [label="{_quoted(v)}"];' for k, v in sorted(nodes.items())]
        lines += [f'  {ids[a]} -> {ids[b]} [label="{_quoted(c)}"];' for a, b, c in edges if a in ids]
        lines.append("}")
    else:
        lines = ["graph LR"]
        lines += [f'  {ids[k]}["{_quoted(v, mermaid=True)}"]' for k, v in sorted(nodes.items())]
        lines += [f'  {ids[a]} -->|"{_quoted(c, mermaid=True)}"| {ids[b]}' for a, b, c in edges if a in ids]
    if STATE.json:  # --json promises JSON on stdout: the rendered graph travels inside it
        print_json({"format": format, "graph": "\n".join(lines) + "\n"})
        return
    typer.echo("\n".join(lines))


def _quoted(text: str, *, mermaid: bool = False) -> str:
    """Text safe inside a double-quoted dot/Mermaid label (constraints may hold `"`, `|`, `<`)."""
    if mermaid:
        return text.replace('"', "#quot;").replace("|", "#124;")
    return text.replace("\\", "\\\\").replace('"', '\\"')


def print_json(data: Any) -> None:
    from agentforge.cli.output import print_json as _pj

    _pj(data)


def register(app: typer.Typer) -> None:
    app.command("lock")(lock)
    app.command("install")(install)
    app.add_typer(deps_app, name="deps")
