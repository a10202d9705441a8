"""The fast paths of sync: the CLI's no-op runs no flow (and imports no Prefect); the plan's
listing spares the second ls-remote (a repository with no mirror is cloned, not asked first); new rows are written with their final release flags."""

from __future__ import annotations

import subprocess
import sys

from tests.sync.conftest import component_yaml, one, q, run_sync, tools_files


def test_cli_noop_sync_imports_no_prefect_and_records_up_to_date(env, factory, register) -> None:
    register(factory.create("r0", files=tools_files(["a"]), tag="v1.0.0"))
    register(factory.create("r1", files=tools_files(["b"]), tag="v1.0.0"))
    run_sync()  # cold, through the services
    code = ("import sys; sys.argv = ['agentforge', '--json', 'sync'];\n"
            "try:\n    from agentforge.cli.main import run; run()  # run, not entry: entry ends the process\n"
            "except SystemExit as exc:\n    print('EXIT', exc.code, file=sys.stderr)\n"
            "print('PREFECT' if any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules) else 'CLEAN',"
            " file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "CLEAN", done.stderr
    assert '"status": "unchanged"' in done.stdout.replace("'", '"') or "unchanged" in done.stdout, done.stdout
    assert one(env, "SELECT count(*) FROM sync_operations WHERE message = 'up to date'")[0] == 2


def test_plan_listing_is_used_and_new_rows_carry_final_flags(env, factory, register) -> None:
    repo = factory.create("demo", files=tools_files(["a", "b"]), tag="v1.0.0")
    register(repo)
    first = run_sync()
    assert first.plan.to_sync and not first.plan.remote  # no mirror yet: cloned, not asked first
    # A reused version (same version, different files) and a new release in the same sync.
    repo.commit(files={"tools/a/component.yaml": component_yaml("a", "1.0.0") + "# changed\n"}, tags=["v1.0.1"])
    repo.commit(files=tools_files(["a", "b"], "1.1.0"), tags=["v1.1.0"])
    second = run_sync()
    assert len(second.plan.remote) == 1  # the listing travels with the plan
    result = second.results["demo"]
    assert result.status == "synced", result
    rows = q(env, "SELECT name, version, release_tags, is_release, is_reused_version FROM components "
                  "ORDER BY name, version, commit_hash")
    released = {(r[0], r[1]) for r in rows if r[3]}
    assert released == {("a", "1.0.0"), ("b", "1.0.0"), ("a", "1.1.0"), ("b", "1.1.0")}
    assert [r[:2] for r in rows if r[4]] == [("a", "1.0.0")]  # the v1.0.1 copy of a 1.0.0
    assert any("reused version" in p for p in result.problems)
    # Only the changed rows were touched: the first sync's rows kept their flags without an UPDATE.
    assert one(env, "SELECT count(*) FROM components WHERE updated_at <> created_at")[0] == 0
