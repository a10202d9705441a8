"""The CLI's table output: large tables print as plain aligned columns, written straight out."""

from __future__ import annotations

import io

from rich.console import Console

from agentforge.cli.output import PLAIN_TABLE_ROWS, PlainTable, _Console, table


def test_large_tables_are_plain_columns_written_as_rich_would_render_them() -> None:
    rows = [(f"comp-{i:04d}", "Tool", f"1.{i % 7}.0", None) for i in range(PLAIN_TABLE_ROWS + 100)]
    plain = table(["component", "type", "latest", "status"], rows, title="components")
    assert isinstance(plain, PlainTable)
    direct, rendered = io.StringIO(), io.StringIO()
    _Console(file=direct, width=200).print(plain)
    Console(file=rendered, width=200, highlight=False).print(plain)  # through rich's renderer
    assert direct.getvalue() == rendered.getvalue()
    lines = direct.getvalue().splitlines()
    assert lines[0] == "components" and lines[1].split() == ["component", "type", "latest", "status"]
    assert len(lines) == 3 + len(rows) and lines[-1].split() == ["comp-0599", "Tool", "1.4.0"]
    assert len({line.index("Tool") for line in lines[3:]}) == 1  # aligned columns
    small = table(["a"], [("x",)])
    assert not isinstance(small, PlainTable)
