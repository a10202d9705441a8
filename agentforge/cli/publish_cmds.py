"""Publishing: `push`, `pr ls`, `fork sync`, `fork link`.

Only `push` runs a Prefect flow (imported inside the command); `pr ls` and `fork sync` call
the service directly. `config set|unset github.token` is in :mod:`agentforge.cli.config_cmds`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from agentforge.cli.common import engine, prepare_prefect, run_flow
from agentforge.cli.output import STATE, console, emit, table
from agentforge.errors import ConfigError

pr_app = typer.Typer(help="Pull requests opened by `agentforge push --pr`.", no_args_is_help=True)
fork_app = typer.Typer(help="Forks used to publish changes.", no_args_is_help=True)
# The `config` group (github.token included) lives in agentforge.cli.config_cmds now.


def push(
    component: str = typer.Argument(..., help="Installed component (REPO/NAME when ambiguous)"),
    message: str | None = typer.Option(None, "--message", "-m", help="Commit message"),
    branch: str | None = typer.Option(None, "--branch", "-b", help="Branch (default forge/<component>-<UTC time>)"),
    fork: bool = typer.Option(False, "--fork", help="Publish through your fork (created when missing)"),
    pr: bool = typer.Option(False, "--pr", help="Open a pull request"),
    title: str | None = typer.Option(None, "--title", help="Pull request title (default: the message's first line)"),
    body_file: Path | None = typer.Option(None, "--body-file", help="Pull request description from a file",
                                          exists=True, dir_okay=False, readable=True),
    draft: bool = typer.Option(False, "--draft", help="Open the pull request as a draft"),
) -> None:
    """Commit COMPONENT's local changes on a new branch and push it (to origin, or to your fork)."""
    body = body_file.read_text(encoding="utf-8") if body_file is not None else None
    if draft and not pr:
        raise ConfigError("--draft needs --pr")
    prepare_prefect()
    engine()
    from flows.publish import publish_component

    out = run_flow(publish_component, component=component, message=message, branch=branch, fork=fork, pr=pr,
                   title=title, body=body, draft=draft)
    lines = [f"{out['component']}: pushed {str(out['commit'])[:12]} to {out['branch']} on {out['pushed_to']}"
             + (" (resumed)" if out.get("resumed") else "")]
    if out.get("fork"):
        lines.append(f"  fork: {out['fork']} ({'created' if out['fork_created'] else 'reused'})")
    if out.get("pull_request_url"):
        verb = "opened" if out["pull_request_created"] else "already open"
        lines.append(f"  pull request #{out['pull_request_number']} {verb}: {out['pull_request_url']}")
    if out.get("changed"):
        lines.append("  changed: " + ", ".join(out["changed"]))
    lines.append(f"  {out['changes_stamped']} change(s) recorded as published; status {out['sync_status']}")
    emit(out, "\n".join(lines))


@pr_app.command("ls")
def pr_ls(
    repository: str | None = typer.Option(None, "--repo", help="Only this repository"),
    no_refresh: bool = typer.Option(False, "--no-refresh", help="Show the last seen state, ask no API"),
) -> None:
    """Pull requests opened by `push --pr`, their state refreshed from the GitHub API."""
    from agentforge.services.publish import list_pull_requests

    engine()
    lines, warning = list_pull_requests(repository=repository, refresh=not no_refresh)
    if STATE.json:
        emit([line.model_dump(mode="json") for line in lines])
    elif not lines:
        console.print("No pull requests. `agentforge push COMPONENT --fork --pr` opens one.")
    else:
        console.print(table(["component", "repository", "#", "state", "branch", "url"],
                            [(x.component or "-", x.repository or "-", x.number or "", x.state, x.branch or "",
                              x.url) for x in lines]))
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


@fork_app.command("sync")
def fork_sync(
    repository: str = typer.Argument(..., help="Registered repository whose fork to update"),
    branch: str | None = typer.Option(None, "--branch", help="Branch to sync (default: the repository's)"),
) -> None:
    """Merge the upstream branch into your fork (GitHub's merge-upstream)."""
    from agentforge.services.publish import sync_fork

    engine()
    out = sync_fork(repository, branch=branch)
    emit(out.model_dump(), f"{out.fork}@{out.branch}: {out.merge_type} — {out.message}")


@fork_app.command("link")
def fork_link(
    repository: str = typer.Argument(..., help="Registered repository"),
    full_name: str | None = typer.Argument(None, help="OWNER/NAME on the configured GitHub"),
    unset: bool = typer.Option(False, "--unset", help="Remove the mapping"),
) -> None:
    """Map a repository registered by another URL (file://, a mirror) to OWNER/NAME on GitHub.

    Its write access then comes from the GitHub API, and `push --fork --pr` works for it.
    """
    from agentforge.services.publish import link_github

    if unset == (full_name is not None):
        raise ConfigError("pass OWNER/NAME, or --unset")
    engine()
    out = link_github(repository, None if unset else full_name)
    emit({"repository": repository, "github": out},
         f"{repository} → {out}" if out else f"{repository}: GitHub mapping removed")


def register(app: typer.Typer) -> None:
    app.command("push")(push)
    app.add_typer(pr_app, name="pr")
    app.add_typer(fork_app, name="fork")
