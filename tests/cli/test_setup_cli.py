"""`init`, `doctor`, `db` through the real CLI, and its error format."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import cli


def test_init_migrates_and_records_identity(engine, clean_db, tmp_path) -> None:
    import sqlalchemy as sa

    res = cli("--json", "init", env={"AGENTFORGE_HOME": str(tmp_path / "h"), "AGENTFORGE_USER": "tester",
                                     "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig")})
    assert res.code == 0, res.err
    from models import SCHEMA_HEAD

    assert res.json()["revision"] == SCHEMA_HEAD
    assert (tmp_path / "h" / "mirrors").is_dir()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM user_settings WHERE user_id='tester'")).scalar() == 1
    again = cli("init", env={"AGENTFORGE_HOME": str(tmp_path / "h"), "AGENTFORGE_USER": "tester"})
    assert again.code == 0, again.err  # idempotent


def test_doctor_masks_the_password(engine) -> None:
    res = cli("doctor", "--json")
    assert res.code == 0, res.err
    facts = res.json()
    assert facts["migration"] == facts["migration_head"]
    assert facts["server_version"]
    assert "git version" in facts["git"]


def test_doctor_as_the_first_command_on_a_new_database(database_url: str) -> None:
    """A new database is created and migrated, as by every command (doctor said SCHEMA_MISMATCH)."""
    import uuid

    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = f"agentforge_doctor_{uuid.uuid4().hex[:8]}"
    base = make_url(database_url)
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        res = cli("--json", "doctor", env={"AGENTFORGE_DATABASE_URL": base.set(database=name).render_as_string(
            hide_password=False)})
        assert res.code == 0, res.err
        assert res.json()["migration"] == res.json()["migration_head"]
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("mysql://root@localhost/x", "DATABASE_URL_INVALID"),
        ("postgresql://u:secretpw@127.0.0.1:notaport/x", "DATABASE_URL_INVALID"),
        ("postgresql://u:secretpw@127.0.0.1:1/x", "DATABASE_UNREACHABLE"),
    ],
)
def test_bad_database_url_is_a_clear_error(url: str, code: str) -> None:
    res = cli("doctor", env={"AGENTFORGE_DATABASE_URL": url})
    assert res.code == 2
    assert f"agentforge: {code}" in res.err
    assert "Hint:" in res.err
    assert "Traceback" not in res.err
    assert "secretpw" not in res.err + res.out


def test_version_flag() -> None:
    res = cli("--version")
    assert res.code == 0 and res.out.startswith("agentforge ")


def test_db_current(engine) -> None:
    res = cli("db", "current", "--json")
    assert res.code == 0, res.err
    assert res.json()["revision"] == res.json()["head"]


def test_unknown_migration_and_wrong_kind_of_path_are_user_errors(engine, tmp_path, capsys) -> None:
    """Plain user mistakes exit 2 with a code naming what is wrong (they used to be INTERNAL_ERROR)."""
    res = cli("db", "upgrade", "9999")
    assert res.code == 2 and "MIGRATION_UNKNOWN" in res.err and "'9999'" in res.err and "Traceback" not in res.err
    res = cli("--json", "compose", "import", str(tmp_path))  # a folder where a file is expected
    assert res.code == 2 and res.json()["error"]["code"] == "DOCUMENT_INVALID"
    assert str(tmp_path) in res.json()["error"]["message"] and "folder" in res.json()["error"]["message"]
    # Any other failed file operation on a path reaches the boundary as FILE_ERROR, exit 2.
    from agentforge.cli.output import print_error

    assert print_error(IsADirectoryError(21, "Is a directory", str(tmp_path))) == 2
    err = capsys.readouterr().err
    assert "FILE_ERROR" in err and f"{tmp_path}: is a directory" in err


def test_usage_errors_under_json_print_json() -> None:
    for args in (("--json", "bogus-cmd"), ("install", "--json")):
        res = cli(*args)
        assert res.code == 2 and res.json()["error"]["code"] == "USAGE_ERROR", (args, res.out, res.err)
        assert "Usage:" in res.err  # the human message still goes to stderr


def test_files_a_user_names_are_read_with_a_bound(engine, tmp_path) -> None:
    """/dev/zero, a FIFO or a huge sparse file is refused (exit 2) before it can exhaust memory or hang."""
    import os

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(3 * 1024 ** 3)  # 3 GiB, sparse
    for args, code in ((("compose", "import", "/dev/zero"), 2), (("compose", "import", str(fifo)), 2),
                       (("compose", "import", str(huge)), 2), (("keys", "add", "/dev/zero"), 2),
                       (("keys", "add", str(huge)), 2), (("lint", str(huge)), 1)):  # lint: 1 = findings
        res = cli(*args, timeout=60)
        assert res.code == code, (args, res.code, res.out, res.err)
        assert "Traceback" not in res.err and "MemoryError" not in res.err + res.out, (args, res.err)
        assert "not a regular file" in res.err + res.out or "limit" in res.err + res.out, (args, res.err, res.out)
    from agentforge.errors import LockError
    from agentforge.services.lock import read_existing_lock

    for bad in (Path("/dev/zero"), fifo, huge):
        with pytest.raises(LockError):
            read_existing_lock(bad)


def test_bad_option_values_carry_a_hint(engine, tmp_path) -> None:
    for args in (("ls", "--type", "bogus"), ("component", "new", "--type", "bogus", "x", "--dir", str(tmp_path)),
                 ("component", "new", "--type", "tool", "BAD", "--dir", str(tmp_path))):
        res = cli(*args)
        assert res.code == 2 and "Hint: " in res.err and "Traceback" not in res.err, (args, res.err)
    assert not any(tmp_path.iterdir())  # nothing scaffolded
