"""Real git repositories for tests, in a few lines.

    factory = GitRepoFactory(tmp_path)
    repo = factory.create("crm-tools", files={"a/component.yaml": "..."}, tag="v1.0.0")
    sha = repo.commit(files={"a/component.yaml": "...", "old.txt": None}, tags=["v1.1.0"])
    repo.url   # file:// URL of the BARE repository, which behaves like a remote

Each handle has a non-bare work dir (``handle.workdir``) where commits are made, and pushes
them to its bare repository (``handle.path``). Author/committer and dates are fixed and
advance one minute per commit, so histories are reproducible. The user's git config is
ignored (``GIT_CONFIG_GLOBAL``/``GIT_CONFIG_NOSYSTEM``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

FileContent = str | bytes | None


class Symlink(str):
    """``files={"link": Symlink("target")}`` commits a symbolic link."""


@dataclass
class RepoHandle:
    name: str
    path: Path  # the bare repository (the "remote")
    workdir: Path
    branch: str
    factory: GitRepoFactory
    commits: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def git(self, *args: str, bare: bool = False) -> str:
        return self.factory.git(*args, cwd=self.path if bare else self.workdir)

    def commit(
        self,
        files: Mapping[str, FileContent] | None = None,
        message: str | None = None,
        tags: Sequence[str] = (),
        *,
        executable: Sequence[str] = (),
        annotated: bool = False,
        push: bool = True,
    ) -> str:
        """Write/delete files (None = delete), commit, tag, push; return the commit id."""
        for rel, content in (files or {}).items():
            target = self.workdir / rel
            if content is None:
                if target.is_symlink() or target.exists():
                    self.git("rm", "-q", "-r", "--", rel)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.exists():
                target.unlink()
            if isinstance(content, Symlink):
                os.symlink(str(content), target)
            elif isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
            if rel in executable:
                target.chmod(0o755)
            self.git("add", "--", rel)
        self.git("commit", "-q", "--allow-empty", "-m", message or f"commit {len(self.commits) + 1}")
        sha = self.git("rev-parse", "HEAD")
        self.commits.append(sha)
        for tag in tags:
            self.tag(tag, annotated=annotated, push=False)
        if push:
            self.push()
        return sha

    def push(self) -> None:
        self.git("push", "-q", "--force", "origin", f"{self.branch}:{self.branch}")
        self.git("push", "-q", "--force", "--tags", "origin")

    def tag(
        self,
        name: str,
        commit: str | None = None,
        force: bool = False,
        *,
        annotated: bool = False,
        push: bool = True,
    ) -> None:
        args = ["tag"]
        if force:
            args.append("-f")
        if annotated:
            args += ["-a", "-m", f"release {name}"]
        args += [name, commit or "HEAD"]
        self.git(*args)
        if push:
            self.git("push", "-q", "--force", "origin", f"refs/tags/{name}:refs/tags/{name}")

    def delete_tag(self, name: str) -> None:
        self.git("tag", "-d", name)
        self.git("push", "-q", "origin", f":refs/tags/{name}")

    def create_branch(self, name: str, commit: str | None = None) -> None:
        self.git("push", "-q", "origin", f"{commit or 'HEAD'}:refs/heads/{name}")

    def delete_branch(self, name: str) -> None:
        self.git("push", "-q", "origin", f":refs/heads/{name}")

    def force_push_branch(self, commit: str, branch: str | None = None) -> None:
        """Rewrite a branch of the remote to ``commit`` (e.g. an older one: history rewrite)."""
        branch = branch or self.branch
        if branch == self.branch:
            self.git("reset", "-q", "--hard", commit)
        self.git("push", "-q", "--force", "origin", f"{commit}:refs/heads/{branch}")

    def set_default_branch(self, branch: str) -> None:
        self.git("symbolic-ref", "HEAD", f"refs/heads/{branch}", bare=True)

    def gc_prune(self) -> None:
        """Drop unreachable objects from the remote (after deleting refs, to make commits vanish)."""
        self.git("reflog", "expire", "--expire=now", "--all")
        self.git("gc", "-q", "--prune=now")
        self.git("reflog", "expire", "--expire=now", "--all", bare=True)
        self.git("gc", "-q", "--prune=now", bare=True)


class GitRepoFactory:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._clock = 1_700_000_000
        gitconfig = self.root / ".gitconfig-tests"
        gitconfig.write_text('[init]\n\tdefaultBranch = main\n[protocol "file"]\n\tallow = always\n')
        self.base_env = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": str(gitconfig),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Test Author",
            "GIT_AUTHOR_EMAIL": "author@example.invalid",
            "GIT_COMMITTER_NAME": "Test Author",
            "GIT_COMMITTER_EMAIL": "author@example.invalid",
            "GIT_TERMINAL_PROMPT": "0",
        }

    def git(self, *args: str, cwd: Path) -> str:
        self._clock += 60
        env = {
            **self.base_env,
            "GIT_AUTHOR_DATE": f"{self._clock} +0000",
            "GIT_COMMITTER_DATE": f"{self._clock} +0000",
        }
        done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {done.stderr}")
        return done.stdout.strip()

    def create(
        self,
        name: str,
        files: Mapping[str, FileContent] | None = None,
        tag: str | Sequence[str] | None = None,
        branch: str = "main",
        *,
        message: str = "initial",
        empty: bool = False,
    ) -> RepoHandle:
        """A bare repository with one commit of ``files`` (unless ``empty``), optionally tagged."""
        bare = self.root / "remotes" / f"{name}.git"
        workdir = self.root / "work" / name
        bare.parent.mkdir(parents=True, exist_ok=True)
        workdir.mkdir(parents=True, exist_ok=False)
        self.git("init", "-q", "--bare", f"--initial-branch={branch}", str(bare), cwd=self.root)
        self.git("init", "-q", f"--initial-branch={branch}", str(workdir), cwd=self.root)
        handle = RepoHandle(name=name, path=bare, workdir=workdir, branch=branch, factory=self)
        handle.git("remote", "add", "origin", str(bare))
        if not empty:
            tags = [tag] if isinstance(tag, str) else list(tag or [])
            handle.commit(files=files or {"README.md": f"# {name}\n"}, message=message, tags=tags)
        return handle
