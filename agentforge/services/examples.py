"""The bundled example repositories: source folders of snapshots → local git repositories with tags.

``examples/<repository>/<tag>/`` holds the repository's full content at that release; the
folders, in semantic-version order of their names, become one commit each, tagged with the
folder name. Building is deterministic and idempotent (same input → same commits).
"""

from __future__ import annotations

from pathlib import Path

import agentforge
from agentforge.core.constraints import sort_key
from agentforge.errors import NotFound
from agentforge.gitops import create_repository_from_snapshots


def default_examples_dir() -> Path:
    return Path(agentforge.__file__).resolve().parent.parent / "examples"


def build_example_repositories(examples_dir: Path, dest_dir: Path) -> dict[str, Path]:
    """Build every example repository under ``dest_dir``; returns name → bare repository path."""
    if not examples_dir.is_dir():
        raise NotFound(f"examples folder {examples_dir} does not exist",
                       hint="Run from a checkout of AgentForge, or pass --examples DIR.")
    dest_dir.mkdir(parents=True, exist_ok=True)
    built: dict[str, Path] = {}
    for repo_dir in sorted(p for p in examples_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        snapshots = sorted((p for p in repo_dir.iterdir() if p.is_dir()), key=lambda p: sort_key(p.name.lstrip("v")))
        if not snapshots:
            continue
        bare = dest_dir / f"{repo_dir.name}.git"
        create_repository_from_snapshots(bare, [(snap, [snap.name]) for snap in snapshots])
        built[repo_dir.name] = bare
    return built
