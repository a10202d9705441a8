"""Signed releases: the keys the user allows, and git's own signature checks against them.

Keys live under the home folder, never in the user's git or GnuPG configuration:

- ``<home>/trust/allowed_signers`` — SSH allowed-signers lines (``gpg.ssh.allowedSignersFile``);
- ``<home>/trust/gnupg/`` — a dedicated GNUPGHOME holding the allowed GPG public keys.

Verification runs ``git verify-tag --raw`` / ``git verify-commit --raw`` in the repository's
mirror with the adapter's hardened environment (:func:`agentforge.gitops._base_environment`)
plus ``GIT_CONFIG_*`` entries that point git at those two stores and at the stock ``gpg`` /
``ssh-keygen`` programs, so a user's ``gpg.program`` or allowed-signers file cannot widen
what counts as "allowed".

Policy (:func:`check_packages`): a package from a trusted repository, or any package while
``allow_unsigned_components`` is true, is accepted without a check (``verified`` stays unset
in the lock). Otherwise the release's tag (the commit, for a release that has no tag) must
carry a valid signature by an allowed key, and must still point at the locked commit;
anything else is refused with an error naming the release.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agentforge.config import Settings, get_settings
from agentforge.core.lockfile import LockedPackage
from agentforge.errors import AgentForgeError, ConfigError, NotFound
from agentforge.gitops import _base_environment

_SSH_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                  "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
_SSH_FPR = re.compile(r"\bSHA256:[A-Za-z0-9+/]{43}\b")
_GPG_VALIDSIG = re.compile(r"^\[GNUPG:\] VALIDSIG ([0-9A-F]{16,40})\b", re.M)
_GIT_TIMEOUT = 60.0


class SignatureRefused(AgentForgeError):
    """A release of an untrusted repository without a valid signature by an allowed key."""


# --- the key stores ---------------------------------------------------------------------------


def trust_dir(settings: Settings) -> Path:
    return settings.home / "trust"


def allowed_signers_file(settings: Settings) -> Path:
    return trust_dir(settings) / "allowed_signers"


def gnupg_home(settings: Settings) -> Path:
    folder = trust_dir(settings) / "gnupg"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)  # gpg refuses (warns about) a group-readable home
    return folder


@dataclass(frozen=True)
class AllowedKey:
    kind: str          # "ssh" | "gpg"
    fingerprint: str   # SHA256:… for SSH, the 40-hex fingerprint for GPG
    principals: str    # SSH principals / GPG user id
    comment: str = ""


def _ssh_fingerprint(blob_b64: str) -> str:
    try:
        blob = base64.b64decode(blob_b64, validate=True)
    except ValueError as exc:
        raise ConfigError("not a valid SSH public key (bad base64)", code="KEY_INVALID") from exc
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _parse_signer_line(line: str) -> tuple[str, str, str, str] | None:
    """(principals, key type, base64 key, comment) of an allowed-signers line, or None when blank."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    fields = text.split()
    for i, word in enumerate(fields):
        if word in _SSH_KEY_TYPES and i + 1 < len(fields):
            principals = fields[0] if i > 0 else "*"
            return principals, word, fields[i + 1], " ".join(fields[i + 2:])
    raise ConfigError(f"not an SSH allowed-signers line or public key: {text[:60]!r}", code="KEY_INVALID",
                      hint="Expected `PRINCIPALS [OPTIONS] ssh-ed25519 AAAA… [COMMENT]` or an `.pub` file.")


def _gpg(settings: Settings, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    gpg = shutil.which("gpg")
    if gpg is None:
        raise ConfigError("gpg is not installed: GPG keys cannot be added or checked", code="GPG_MISSING",
                          hint="Install GnuPG, or use SSH signing keys (allowed-signers lines).")
    return subprocess.run([gpg, "--homedir", str(gnupg_home(settings)), "--batch", "--no-tty", *args],
                          input=input, capture_output=True, timeout=_GIT_TIMEOUT, check=False)


def add_key_file(path: Path, *, settings: Settings | None = None) -> list[AllowedKey]:
    """Allow the keys in ``path``: SSH allowed-signers lines / ``.pub`` keys, or a GPG public key block."""
    settings = settings or get_settings()
    from agentforge.fileio import read_document_file

    data = read_document_file(path, max_bytes=1024 * 1024, what="key")
    if b"-----BEGIN PGP PUBLIC KEY BLOCK-----" in data:
        before = {k.fingerprint for k in _gpg_keys(settings)}
        done = _gpg(settings, "--import", input=data)
        if done.returncode != 0:
            raise ConfigError(f"{path}: gpg could not import the key: "
                              f"{done.stderr.decode(errors='replace').strip()[:300]}", code="KEY_INVALID")
        return [k for k in _gpg_keys(settings) if k.fingerprint not in before]
    if b"PRIVATE KEY" in data:
        raise ConfigError(f"{path} holds a private key; give the public key (.pub) or an allowed-signers line",
                          code="KEY_INVALID")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text", code="KEY_INVALID") from exc
    new_lines: list[str] = []
    added: list[AllowedKey] = []
    known = {k.fingerprint for k in _ssh_keys(settings)}
    for line in text.splitlines():
        parsed = _parse_signer_line(line)
        if parsed is None:
            continue
        principals, ktype, blob, comment = parsed
        fpr = _ssh_fingerprint(blob)
        if fpr in known:
            continue
        known.add(fpr)
        # A bare .pub file has no principals: any signer name, git signatures only.
        stripped = line.strip()
        new_lines.append(stripped if not stripped.startswith(ktype) else
                         f'* namespaces="git" {ktype} {blob}' + (f" {comment}" if comment else ""))
        added.append(AllowedKey("ssh", fpr, principals, comment))
    if not new_lines and not added and not text.strip():
        raise ConfigError(f"{path} holds no key", code="KEY_INVALID")
    if new_lines:
        target = allowed_signers_file(settings)
        target.parent.mkdir(parents=True, exist_ok=True)
        old = target.read_text(encoding="utf-8") if target.exists() else ""
        target.write_text(old + "".join(x + "\n" for x in new_lines), encoding="utf-8")
    return added


def _ssh_keys(settings: Settings) -> list[AllowedKey]:
    target = allowed_signers_file(settings)
    if not target.exists():
        return []
    out = []
    for line in target.read_text(encoding="utf-8").splitlines():
        parsed = _parse_signer_line(line)
        if parsed is not None:
            out.append(AllowedKey("ssh", _ssh_fingerprint(parsed[2]), parsed[0], parsed[3]))
    return out


def _gpg_keys(settings: Settings) -> list[AllowedKey]:
    if shutil.which("gpg") is None or not (trust_dir(settings) / "gnupg").exists():
        return []
    done = _gpg(settings, "--with-colons", "--fingerprint", "--list-keys")
    out: list[AllowedKey] = []
    fpr: str | None = None
    pending = False  # the next fpr line belongs to a primary key
    for line in done.stdout.decode(errors="replace").splitlines():
        parts = line.split(":")
        if parts[0] == "pub":
            pending, fpr = True, None
        elif parts[0] == "fpr" and pending:
            fpr, pending = parts[9], False
        elif parts[0] == "uid" and fpr is not None:
            out.append(AllowedKey("gpg", fpr, parts[9]))
            fpr = None
    return out


def list_keys(*, settings: Settings | None = None) -> list[AllowedKey]:
    settings = settings or get_settings()
    return _ssh_keys(settings) + _gpg_keys(settings)


def remove_key(fingerprint: str, *, settings: Settings | None = None) -> AllowedKey:
    """Forget the key whose fingerprint is (or, unambiguously, starts with) ``fingerprint``."""
    settings = settings or get_settings()
    wanted = fingerprint.strip()
    hits = [k for k in list_keys(settings=settings)
            if k.fingerprint == wanted or (len(wanted) >= 8 and k.fingerprint.upper().startswith(wanted.upper()))]
    if not hits:
        raise NotFound(f"no allowed key {wanted!r}", code="KEY_UNKNOWN", hint="`agentforge keys ls` lists them.")
    if len(hits) > 1:
        raise ConfigError(f"{wanted!r} matches several keys: {', '.join(k.fingerprint for k in hits)}",
                          code="KEY_AMBIGUOUS", hint="Give the whole fingerprint.")
    key = hits[0]
    if key.kind == "gpg":
        done = _gpg(settings, "--yes", "--delete-keys", key.fingerprint)
        if done.returncode != 0:
            raise ConfigError(f"gpg could not delete {key.fingerprint}: "
                              f"{done.stderr.decode(errors='replace').strip()[:300]}", code="KEY_INVALID")
    else:
        target = allowed_signers_file(settings)
        kept = []
        for line in target.read_text(encoding="utf-8").splitlines():
            parsed = _parse_signer_line(line)
            if parsed is None or _ssh_fingerprint(parsed[2]) != key.fingerprint:
                kept.append(line)
        target.write_text("".join(x + "\n" for x in kept), encoding="utf-8")
    return key


# --- verification -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    verified: bool
    signing_key: str | None = None   # fingerprint of the key that signed (when verified)
    checked: str = ""                # "tag v1.0.0" / "commit abc…"
    reason: str = ""                 # why not verified


def _verify_env(settings: Settings) -> dict[str, str]:
    env = {**os.environ, **_base_environment(allow_http=False, credentials=None)}
    extra = [("gpg.ssh.allowedSignersFile", str(allowed_signers_file(settings))),
             ("gpg.program", "gpg"), ("gpg.ssh.program", "ssh-keygen"), ("gpg.minTrustLevel", "undefined")]
    count = int(env["GIT_CONFIG_COUNT"])
    for offset, (key, value) in enumerate(extra):
        env[f"GIT_CONFIG_KEY_{count + offset}"] = key
        env[f"GIT_CONFIG_VALUE_{count + offset}"] = value
    env["GIT_CONFIG_COUNT"] = str(count + len(extra))
    env["GNUPGHOME"] = str(gnupg_home(settings))
    return env


def _git(mirror: Path, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "--git-dir", str(mirror), *args], env=dict(env), capture_output=True, text=True,
                          timeout=_GIT_TIMEOUT, check=False)


def _signature_of(done: subprocess.CompletedProcess[str]) -> tuple[bool, str | None, str]:
    text = done.stdout + done.stderr
    gpg = _GPG_VALIDSIG.search(text)
    ssh = _SSH_FPR.search(text)
    if done.returncode == 0 and (gpg or ssh):
        return True, gpg.group(1) if gpg else ssh.group(0) if ssh else None, ""
    if "No principal matched" in text or "NO_PUBKEY" in text or "ERRSIG" in text:
        who = ssh.group(0) if ssh else ""
        return False, None, f"signed by a key that is not allowed{' (' + who + ')' if who else ''}"
    if "BADSIG" in text or "Signature verification failed" in text or "Could not verify signature" in text:
        return False, None, "bad signature"
    if "no signature found" in text.lower() or (done.returncode != 0 and not text.strip()):
        return False, None, "unsigned"
    return False, None, "unsigned or not verifiable"


def verify_release(mirror: Path, commit: str, tags: Sequence[str], *, settings: Settings | None = None
                   ) -> Verification:
    """Does a tag of ``commit`` (or the commit itself, when ``tags`` is empty) carry a valid
    signature by an allowed key? A tag that no longer points at ``commit`` does not count."""
    settings = settings or get_settings()
    env = _verify_env(settings)
    reasons: list[str] = []
    for tag in sorted(tags):
        peeled = _git(mirror, env, "rev-parse", "--verify", "-q", f"refs/tags/{tag}^{{commit}}")
        if peeled.stdout.strip() != commit:
            reasons.append(f"tag {tag} no longer points at {commit[:12]}")
            continue
        kind = _git(mirror, env, "cat-file", "-t", f"refs/tags/{tag}").stdout.strip()
        if kind != "tag":
            reasons.append(f"tag {tag} is unsigned (a lightweight tag)")
            continue
        ok, fpr, why = _signature_of(_git(mirror, env, "verify-tag", "--raw", f"refs/tags/{tag}"))
        if ok:
            return Verification(True, fpr, f"tag {tag}")
        reasons.append(f"tag {tag}: {why}")
    if not tags:
        ok, fpr, why = _signature_of(_git(mirror, env, "verify-commit", "--raw", commit))
        if ok:
            return Verification(True, fpr, f"commit {commit[:12]}")
        reasons.append(f"commit {commit[:12]}: {why}")
    return Verification(False, None, ", ".join(f"tag {t}" for t in sorted(tags)) or f"commit {commit[:12]}",
                        "; ".join(reasons))


@dataclass(frozen=True)
class PackageRef:
    """What the policy needs of one locked package."""

    key: str
    label: str                 # "repo/component 1.2.0"
    repository_name: str
    repository_url: str
    mirror: Path
    commit: str
    tags: tuple[str, ...]


def check_packages(packages: Sequence[PackageRef], *, trusted: set[str], allow_unsigned: bool,
                   settings: Settings | None = None) -> dict[str, Verification | None]:
    """key → its verification (None: not required). Raises :class:`SignatureRefused` naming every
    release of an untrusted repository that is not signed by an allowed key."""
    settings = settings or get_settings()
    out: dict[str, Verification | None] = {}
    refused: list[tuple[PackageRef, Verification]] = []
    for ref in packages:
        if allow_unsigned or ref.repository_url in trusted:
            out[ref.key] = None
            continue
        result = verify_release(ref.mirror, ref.commit, ref.tags, settings=settings)
        out[ref.key] = result
        if not result.verified:
            refused.append((ref, result))
    if refused:
        lines = [f"{ref.label} ({result.checked}): {result.reason}" for ref, result in refused]
        names = sorted({ref.repository_name for ref, _ in refused})
        raise SignatureRefused(
            "release(s) of untrusted repositories without a valid signature by an allowed key:\n  "
            + "\n  ".join(lines),
            code="SIGNATURE_REQUIRED",
            hint=f"Trust the repository (`agentforge repo trust {names[0]}`), or allow its signing key "
                 "(`agentforge keys add FILE`), or set allow_unsigned_components "
                 "(`agentforge config set allow_unsigned_components true`).")
    return out


def enforce_signatures(packages: Mapping[str, LockedPackage], *, settings: Settings | None = None
                       ) -> dict[str, LockedPackage]:
    """The policy applied to locked packages: returns them with ``verified``/``signing_key`` set
    (unset when no check was required), or raises :class:`SignatureRefused`.

    The database is read in one short transaction; the git checks run after it is closed.
    """
    import sqlalchemy as sa

    from agentforge.db import get_engine, session_scope
    from agentforge.services.settings import trust_policy
    from agentforge.services.sync import mirror_path
    from models import Component, Repository
    from models.keys import component_key_in

    settings = settings or get_settings()
    if not packages:
        return {}
    with session_scope(get_engine(settings)) as session:
        policy = trust_policy(session=session)
        urls = sorted({p.repository for p in packages.values()})
        repos = {url: (rid, name) for rid, name, url in session.execute(
            sa.select(Repository.id, Repository.name, Repository.url).where(Repository.url.in_(urls)))}
        wanted = sorted({(p.repository, p.component, p.commit) for p in packages.values()})
        tags = {(url, name, commit): tuple(t or ()) for url, name, commit, t in session.execute(
            sa.select(Component.repository_url, Component.name, Component.commit_hash, Component.release_tags)
            .where(component_key_in(wanted)))}
    refs: list[PackageRef] = []
    for key, pkg in sorted(packages.items()):
        if pkg.repository not in repos:
            raise NotFound(f"{pkg.component} {pkg.version}: repository {pkg.repository} is not registered",
                           code="REPOSITORY_UNKNOWN", hint=f"`agentforge repo add {pkg.repository}`.")
        rid, name = repos[pkg.repository]
        refs.append(PackageRef(key=key, label=f"{name}/{pkg.component} {pkg.version}", repository_name=name,
                               repository_url=pkg.repository, mirror=Path(mirror_path(settings, rid)),
                               commit=pkg.commit, tags=tags.get((pkg.repository, pkg.component, pkg.commit), ())))
    results = check_packages(refs, trusted=policy.trusted, allow_unsigned=policy.allow_unsigned, settings=settings)
    out: dict[str, LockedPackage] = {}
    for key, pkg in packages.items():
        result = results.get(key)
        out[key] = pkg.model_copy(update={"verified": True if result else None,
                                          "signing_key": result.signing_key if result else None})
    return out
