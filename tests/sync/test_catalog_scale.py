"""`ls`/`show` over 10,000 component rows inserted with set-based SQL (correctness only; timing is in bench/)."""

from __future__ import annotations

import sqlalchemy as sa

from tests.cli.helpers import cli


def test_ls_and_show_on_ten_thousand_components(env) -> None:
    with env.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO repositories (id, name, url, type, default_branch, sync_status) "
            "VALUES (gen_random_uuid(), 'big', 'file:///big.git', 'MIXED', 'main', 'SYNCED')"))
        # 2,000 components × 5 released versions, each at its own commit: 10,000 rows in one statement.
        conn.execute(sa.text(
            """
            INSERT INTO components (id, name, type, version, repository_id, repository_url, path, commit_hash,
                                    definition, metadata, release_tags, is_release)
            SELECT gen_random_uuid(), 'tool-' || lpad(c::text, 4, '0'), 'TOOL', '1.' || v || '.0', r.id, r.url,
                   'tools/' || c, md5(c::text || '-' || v) || '00000000',
                   jsonb_build_object('kind', 'Tool', 'metadata', jsonb_build_object('name', 'tool-' || c)),
                   '{}'::jsonb, ARRAY['v1.' || v || '.0'], true
            FROM generate_series(1, 2000) AS c, generate_series(0, 4) AS v, repositories r
            """))
    res = cli("--json", "ls")
    assert res.code == 0, res.err
    data = res.json()
    assert len(data) == 2000
    assert data[0]["name"] == "tool-0001" and data[0]["latest"] == "1.4.0"
    assert data[0]["versions"] == ["1.4.0", "1.3.0", "1.2.0", "1.1.0", "1.0.0"]
    assert len(cli("--json", "ls", "--type", "prompt").json()) == 0
    shown = cli("--json", "show", "tool-1234@1.2.0")
    assert shown.code == 0, shown.err
    assert shown.json()["version"] == "1.2.0" and shown.json()["tags"] == ["v1.2.0"]
