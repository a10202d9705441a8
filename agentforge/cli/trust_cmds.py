"""`repo trust|untrust|disable|enable NAME` and `keys add|ls|rm`: who may publish what we run.

The `repo` commands are added to the group of :mod:`agentforge.cli.repo_cmds` from here, so
that module stays as it is. Trust is stored in ``user_settings.trusted_repositories``
(repository URLs); keys under ``<home>/trust`` (see :mod:`agentforge.services.trust`).
No command here imports Prefect.
"""

from __future__ import annotations

from pathlib import Path

import typer

from agentforge.cli.common import engine
from agentforge.cli.output import emit, table
from agentforge.cli.repo_cmds import repo_app

keys_app = typer.Typer(help="Keys allowed to sign releases of untrusted repositories (SSH and GPG).",
                       no_args_is_help=True)


def _set_trust(name: str, trusted: bool) -> None:
    from agentforge.db import session_scope
    from agentforge.services.settings import current_user_id
    from models import repositories as repos_q
    from models import settings as settings_q

    with session_scope(engine()) as session:
        repo = repos_q.get_repository(session=session, name=name)
        changed = settings_q.set_trusted(session=session, user_id=current_user_id(), url=repo.url, trusted=trusted)
        url = repo.url
    state = "trusted" if trusted else "untrusted"
    note = "" if changed else " (already)"
    detail = ("its releases are accepted unsigned" if trusted else
              "its releases need a valid signature by an allowed key (`agentforge keys add FILE`) "
              "unless allow_unsigned_components is true")
    emit({"repository": name, "url": url, "trusted": trusted, "changed": changed},
         f"{name} is {state}{note}: {detail}")


@repo_app.command("trust")
def repo_trust(name: str = typer.Argument(..., help="Registered repository")) -> None:
    """Trust NAME: its releases are accepted without a signature."""
    _set_trust(name, True)


@repo_app.command("untrust")
def repo_untrust(name: str = typer.Argument(..., help="Registered repository")) -> None:
    """Stop trusting NAME: lock and install accept only its releases signed by an allowed key."""
    _set_trust(name, False)


def _set_active(name: str, active: bool) -> None:
    from agentforge.db import session_scope
    from models import settings as settings_q

    with session_scope(engine()) as session:
        _repo, changed = settings_q.set_repository_active(session=session, name=name, active=active)
    verb = "enabled" if active else "disabled"
    detail = ("it is synced and resolved from again" if active else
              "it is not synced, and resolving a component from it is an error")
    emit({"repository": name, "active": active, "changed": changed},
         f"{name} {verb}{'' if changed else ' (already)'}: {detail}")


@repo_app.command("disable")
def repo_disable(name: str = typer.Argument(..., help="Registered repository")) -> None:
    """Disable NAME: not synced, and not a source for resolution (an error names it)."""
    _set_active(name, False)


@repo_app.command("enable")
def repo_enable(name: str = typer.Argument(..., help="Registered repository")) -> None:
    """Enable NAME again."""
    _set_active(name, True)


@keys_app.command("add")
def keys_add(file: Path = typer.Argument(..., help="SSH allowed-signers lines or a .pub key, or a GPG "
                                                   "public key (armored)", exists=True, dir_okay=False)) -> None:
    """Allow the signing key(s) in FILE."""
    from agentforge.services.trust import add_key_file

    added = add_key_file(file)
    emit([{"kind": k.kind, "fingerprint": k.fingerprint, "principals": k.principals} for k in added],
         "\n".join(f"allowed {k.kind} key {k.fingerprint} ({k.principals})" for k in added)
         or f"{file}: every key in it was already allowed")


@keys_app.command("ls")
def keys_ls() -> None:
    """The allowed signing keys."""
    from agentforge.services.trust import list_keys

    keys = list_keys()
    data = [{"kind": k.kind, "fingerprint": k.fingerprint, "principals": k.principals, "comment": k.comment}
            for k in keys]
    emit(data, table(["kind", "fingerprint", "principals", "comment"],
                     [(d["kind"], d["fingerprint"], d["principals"], d["comment"]) for d in data])
         if data else "No allowed keys. `agentforge keys add FILE` allows one.")


@keys_app.command("rm")
def keys_rm(fingerprint: str = typer.Argument(..., help="Fingerprint (or an unambiguous prefix, 8+ chars)")) -> None:
    """Forget an allowed key: releases signed only by it are refused again."""
    from agentforge.services.trust import remove_key

    key = remove_key(fingerprint)
    emit({"removed": key.fingerprint, "kind": key.kind}, f"removed {key.kind} key {key.fingerprint}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
