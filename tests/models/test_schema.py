"""The schema on a real server: CHECKs, triggers, partial indexes, enums, uniqueness."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from models import (
    Component,
    ComponentType,
    Repository,
    RepoType,
    enums,
)
from models.tables import DB_URL_CHECK_REGEX


def _repo(session, url: str = "https://github.com/acme/tools", name: str | None = None) -> Repository:
    repo = Repository(name=name or f"r{uuid.uuid4().hex[:8]}", url=url, type=RepoType.MIXED)
    session.add(repo)
    session.flush()
    return repo


def _component(session, repo: Repository, **kw) -> Component:
    values = dict(name="lookup", type=ComponentType.TOOL, version="1.0.0", repository_id=repo.id,
                  repository_url=repo.url, path="tools/lookup", commit_hash="a" * 40,
                  definition={"kind": "Tool"})
    values.update(kw)
    comp = Component(**values)
    session.add(comp)
    session.flush()
    return comp


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/tools",
        "https://gitlab.example.com/group/sub/repo",
        "https://host:8443/o/r",
        "git@github.com:acme/tools.git",
        "git@host.example:o/r",
        "file:///srv/git/tools",
        "file:///srv/my%20repos/tools",
        "http://github.com/acme/tools",  # only reachable through `repo add --allow-insecure`
    ],
)
def test_repo_url_check_accepts(db_session, url: str) -> None:
    _repo(db_session, url)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme",
        "ext::sh -c touch% /tmp/pwned",
        "-uhttps://github.com/o/r",
        "file://relative/path",
        "file:///srv/my repos/tools",
        "ftp://host/o/r",
        "git@host:o",
        "https://user:pw@github.com/o/r",
    ],
)
def test_repo_url_check_rejects(db_session, url: str) -> None:
    with pytest.raises(sa_exc.IntegrityError, match="check_repo_url"):
        _repo(db_session, url)


def test_repo_url_is_unique(db_session) -> None:
    _repo(db_session, "https://github.com/acme/tools", name="one")
    with pytest.raises(sa_exc.IntegrityError, match="repositories_url_key"):
        _repo(db_session, "https://github.com/acme/tools", name="two")


def test_commit_hash_check(db_session) -> None:
    repo = _repo(db_session)
    _component(db_session, repo, commit_hash="0123456789abcdef0123456789abcdef01234567")
    with pytest.raises(sa_exc.IntegrityError, match="check_commit_hash"):
        _component(db_session, repo, commit_hash="XYZ", path="other")


def test_version_format_check(db_session) -> None:
    repo = _repo(db_session)
    _component(db_session, repo, version="2.1.0-beta.1")
    with pytest.raises(sa_exc.IntegrityError, match="check_version_format"):
        _component(db_session, repo, version="v2", path="other")


def test_updated_at_trigger_bumps_timestamp(db_session) -> None:
    repo = _repo(db_session)
    comp = _component(db_session, repo)
    before = db_session.execute(sa.text("SELECT updated_at FROM components WHERE id = :i"), {"i": comp.id}).scalar()
    # now() is the transaction start inside one transaction: commit the row in a savepoint and
    # compare against clock_timestamp() set explicitly so the trigger's NOW() can be observed.
    db_session.execute(sa.text("UPDATE components SET updated_at = '2000-01-01' WHERE id = :i"), {"i": comp.id})
    db_session.execute(sa.text("UPDATE components SET version = '1.0.1' WHERE id = :i"), {"i": comp.id})
    after = db_session.execute(sa.text("SELECT updated_at FROM components WHERE id = :i"), {"i": comp.id}).scalar()
    assert after.year > 2000  # the trigger overwrote the explicit value with NOW()
    assert after == before  # NOW() is the transaction's start time


def test_local_definition_change_is_logged(db_session) -> None:
    repo = _repo(db_session)
    comp = _component(db_session, repo)
    db_session.execute(sa.text("UPDATE components SET local_definition = CAST(:v AS jsonb) WHERE id = :i"),
                       {"v": '{"spec": {"timeout": 5}}', "i": comp.id})
    db_session.execute(sa.text("UPDATE components SET local_definition = CAST(:v AS jsonb) WHERE id = :i"),
                       {"v": '{"spec": {"timeout": 9}}', "i": comp.id})
    db_session.execute(sa.text("UPDATE components SET version = '1.0.2' WHERE id = :i"), {"i": comp.id})
    rows = db_session.execute(
        sa.text("SELECT change_type, field_path, old_value, new_value FROM component_changes "
                "WHERE component_id = :i ORDER BY new_value->'spec'->>'timeout'"), {"i": comp.id}).all()
    assert [(r.change_type, r.field_path) for r in rows] == [("UPDATE", "local_definition")] * 2
    assert rows[0].old_value is None and rows[0].new_value == {"spec": {"timeout": 5}}
    assert rows[1].old_value == {"spec": {"timeout": 5}} and rows[1].new_value == {"spec": {"timeout": 9}}


def test_partial_indexes_exist_with_predicates(db_session) -> None:
    rows = dict(db_session.execute(sa.text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexname IN "
        "('idx_components_installed_type', 'idx_components_local_changes', 'idx_sync_ops_pending')")).all())
    assert "WHERE (is_installed = true)" in rows["idx_components_installed_type"]
    assert "(is_installed, type)" in rows["idx_components_installed_type"]
    assert "WHERE (has_local_changes = true)" in rows["idx_components_local_changes"]
    assert "(status, created_at)" in rows["idx_sync_ops_pending"]
    assert "'PENDING'" in rows["idx_sync_ops_pending"] and "'IN_PROGRESS'" in rows["idx_sync_ops_pending"]


def test_design_indexes_exist(db_session) -> None:
    names = set(db_session.execute(sa.text("SELECT indexname FROM pg_indexes WHERE schemaname='public'")).scalars())
    expected = {
        "idx_repositories_url", "idx_repositories_type_active", "idx_components_repo_path",
        "idx_components_name_type", "idx_components_sync_status", "idx_dependencies_component",
        "idx_dependencies_type", "idx_changes_component_time", "idx_changes_type_time",
        "idx_sync_ops_component_status", "idx_sync_ops_created",
    }
    assert expected <= names



def test_redundant_component_indexes_are_not_created(db_session) -> None:
    """Migration 0202: each of these repeats what a design index already answers, and every row a
    sync writes paid for it (docs/database-schema.md "Indexes we do not create")."""
    names = set(db_session.execute(sa.text(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'components'")).scalars())
    assert names.isdisjoint({"ix_components_type", "ix_components_is_installed", "ix_components_has_local_changes",
                             "ix_components_sync_status"})
    assert {"idx_components_sync_status", "idx_components_installed_type", "idx_components_local_changes",
            "idx_components_name_type"} <= names

DESIGN_ENUMS = {
    "repo_type": ["TOOLS", "PROMPTS", "AGENTS", "COMPOSITIONS", "MIXED"],
    "repo_sync_status": ["NEVER_SYNCED", "SYNCED", "SYNC_FAILED", "SYNC_IN_PROGRESS", "OUTDATED"],
    "component_type": ["TOOL", "PROMPT", "AGENT"],
    "component_sync_status": ["REMOTE_ONLY", "LOCAL_ONLY", "SYNCED", "MODIFIED", "FORKED", "CONFLICT",
                              "OUTDATED", "SYNC_FAILED"],
    "dependency_type": ["DIRECT", "TRANSITIVE", "PEER", "DEV"],
    "change_type": ["CREATE", "UPDATE", "DELETE", "MOVE", "RENAME"],
    "sync_operation_type": ["PULL_UPSTREAM", "PUSH_TO_ORIGIN", "PUSH_TO_FORK", "CREATE_FORK", "CREATE_PR",
                            "MERGE_UPSTREAM", "RESOLVE_CONFLICT"],
    "sync_operation_status": ["PENDING", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED",
                              "REQUIRES_MANUAL_RESOLUTION"],
    "sync_direction": ["UPSTREAM_TO_LOCAL", "LOCAL_TO_UPSTREAM", "LOCAL_TO_FORK", "FORK_TO_UPSTREAM"],
    "instance_status": ["STOPPED", "STARTING", "RUNNING", "STOPPING", "ERROR", "UPDATING"],
}


@pytest.mark.parametrize("type_name", sorted(DESIGN_ENUMS))
def test_enum_values_match_design(db_session, type_name: str) -> None:
    labels = db_session.execute(sa.text(
        "SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
        "WHERE t.typname = :n ORDER BY e.enumsortorder"), {"n": type_name}).scalars().all()
    assert labels == DESIGN_ENUMS[type_name]


def test_python_enums_match_database() -> None:
    assert [m.value for m in enums.ComponentSyncStatus] == DESIGN_ENUMS["component_sync_status"]
    assert [m.value for m in enums.InstanceStatus] == DESIGN_ENUMS["instance_status"]


def test_every_design_table_exists(db_session) -> None:
    tables = set(db_session.execute(sa.text(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
    assert {"repositories", "forks", "components", "component_dependencies", "component_changes",
            "sync_operations", "compositions", "composition_instances", "user_settings",
            "system_config"} <= tables


def test_url_check_regex_is_the_models_one(db_session) -> None:
    definition = db_session.execute(sa.text(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'check_repo_url'")).scalar()
    assert DB_URL_CHECK_REGEX in definition
