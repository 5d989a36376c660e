"""`replay sql`, `replay query`, `replay stat` as a user runs them, and the help texts.

Commands run in-process through `replay.cli.main` (as the `replay` script does) to keep
the suite fast; one test runs the real process.
"""

from __future__ import annotations

import json

import pytest
import typer
import typer.main

from replay.cli import app
from replay.queries import named_queries
from tests.conftest import run_cli

TRACE = """
    python3-100   [000] .....     1.000000: mm_page_alloc: page=0000000011111111 pfn=0x1000 order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE
    python3-100   [000] .....     1.000100: mm_page_alloc: page=0000000022222222 pfn=0x2000 order=11 migratetype=4 gfp_flags=GFP_KERNEL|__GFP_COMP
    python3-100   [000] .....     1.000200: mm_page_free: page=0000000011111111 pfn=0x1000 order=0
    python3-100   [000] .....     1.000300: mm_page_alloc: page=0000000000000000 pfn=0x0 order=3 migratetype=0 gfp_flags=GFP_ATOMIC
"""


@pytest.fixture
def ds(ingest_text):
    return ingest_text(TRACE)


def _error_line(result) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_query_list():
    r = run_cli("query", "--list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(named_queries())
    assert all(len(line.split(None, 1)) == 2 for line in lines)


def test_sql_formats_and_output_file(cli, ds, tmp_path):
    q = "SELECT event, \"order\", count(*) AS n FROM events GROUP BY ALL ORDER BY 1, 2"
    r = cli("sql", ds, q, "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        '"event","order","n"', '"mm_page_alloc",0,1', '"mm_page_alloc",3,1',
        '"mm_page_alloc",11,1', '"mm_page_free",0,1']
    out = tmp_path / "r.json"
    r = cli("sql", ds, q, "--format", "json", "-o", out)
    assert r.returncode == 0 and r.stdout == ""
    assert json.loads(out.read_text())[2] == {"event": "mm_page_alloc", "order": 11, "n": 1}
    line = _error_line(cli("sql", ds, q, "-o", out))
    assert str(out) in line and "--force" in line
    text = tmp_path / "r.txt"  # a suffix naming no format: --format's (table, plain)
    r = cli("sql", ds, q, "-o", text)
    assert r.returncode == 0
    assert text.read_text().splitlines()[1].split() == ["mm_page_alloc", "0", "1"]


def test_sql_text_kept_as_given(cli, ds):
    r = cli("sql", ds, "SELECT 7 // 2 AS q", "--format", "csv")
    assert r.stdout.splitlines() == ['"q"', "3"]


def test_sql_error_is_one_line_with_the_query(cli, ds):
    line = _error_line(cli("sql", ds, "SELECT nope FROM events"))
    assert "nope" in line and "SELECT nope FROM events" in line


@pytest.mark.parametrize("query, why", [
    ("COPY (SELECT 1) TO 'x.csv'", "read-only"),
    ("SELECT * FROM read_csv('/etc/passwd')", "/etc/passwd"),
])
def test_sql_is_read_only(cli, ds, query, why):
    assert why in _error_line(cli("sql", ds, query))


def test_query_params_and_show_sql(cli, ds):
    r = cli("query", "order_migratetype", ds, "--param", "kernel=4.3", "--show-sql",
                "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert "FROM events e" in r.stderr and "$kernel = '4.3'" in r.stderr
    assert r.stdout.splitlines()[1:] == [
        f"\"{ds.name}\",0,1,\"Reclaimable\",1,1",
        f"\"{ds.name}\",11,4,\"CMA/Isolate\",1,2048"]
    line = _error_line(cli("query", "order_migratetype", ds, "--param", "bogus=1"))
    assert "bogus" in line and "kernel" in line
    line = _error_line(cli("query", "gfp_flags", ds, "--param", "min_order=high"))
    assert "min_order" in line and "INTEGER" in line
    assert "no query named" in _error_line(cli("query", "nope", ds))


def test_several_datasets_told_apart(cli, ingest_text):
    a = ingest_text(TRACE, name="a.txt")
    b = ingest_text(TRACE, name="b.txt")
    r = cli("sql", a, b, "SELECT trace, count(*) AS n FROM allocs GROUP BY 1 ORDER BY 1",
                "--format", "csv")
    assert r.stdout.splitlines() == ['"trace","n"', '"a.txt.replay",2', '"b.txt.replay",2']


def test_stat_any_order_and_kernel_names(cli, ds):
    r = cli("stat", ds)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "Total allocation requests     :                3   [             8228 KB ]" in lines
    assert "Total allocation failures     :                1   [               32 KB ]" in lines
    header = next(line for line in lines if line.startswith("Order"))
    assert header.split() == ["Order", "Unmovable", "Movable", "Reclaimable", "HighAtomic",
                              "CMA/Isolate"]
    rows = {line.split()[0]: line.split()[1:] for line in lines if line[:5].strip().isdigit()}
    assert rows["0"] == [".", "1", ".", ".", "."]
    assert rows["11"] == [".", ".", ".", ".", "1"]  # perf kmem stops at order 10
    r = cli("stat", ds, "--kernel", "4.3")
    header = next(line for line in r.stdout.splitlines() if line.startswith("Order"))
    assert header.split()[1:4] == ["Unmovable", "Reclaimable", "Movable"]


def _walk(command, path: str):  # noqa: ANN001 - typer's (vendored click) command
    yield path, command
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _walk(sub, f"{path} {name}")


def test_every_command_and_option_has_help():
    root = typer.main.get_command(app)
    for path, command in _walk(root, "replay"):
        assert (command.help or "").strip(), f"{path}: no help"
        for param in command.params:
            text = getattr(param, "help", None)
            assert text and text.strip(), f"{path} {param.name}: no help"
