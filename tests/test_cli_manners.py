"""A newcomer's first ten minutes: the command line behaves as command lines do.

Each test is one item of that list: version, -h, completion, one meaning per option name,
missing output directories, errors that keep what they quote, hints that say what to do
next, output that suits a pipe, files in the format their name says.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from replay import __version__
from tests.conftest import ROOT, SAMPLES, run_cli

TRACE = """
    python3-100   [000] .....     1.000000: mm_page_alloc: page=0000000011111111 pfn=0x1000 order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE
    python3-100   [000] .....     1.000100: mm_page_alloc: page=0000000022222222 pfn=0x2000 order=4 migratetype=1 gfp_flags=GFP_KERNEL|__GFP_COMP
    python3-100   [000] .....     1.000200: mm_page_free: page=0000000011111111 pfn=0x1000 order=0
"""


@pytest.fixture
def ds(ingest_text):
    return ingest_text(TRACE)


def _one_error_line(result) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"replay {__version__}"


@pytest.mark.parametrize("args", [("-h",), ("sql", "-h"), ("ingest", "-h")])
def test_short_help(args):
    r = run_cli(*args)
    assert r.returncode == 0 and "Usage: " in r.stdout
    assert r.stdout == run_cli(*args[:-1], "--help").stdout


def test_shell_completion():
    r = run_cli("--help")
    assert "--install-completion" in r.stdout and "--show-completion" in r.stdout
    script = Path(sys.executable).parent / "replay"  # the installed command, by its name
    if not script.exists():
        pytest.skip("no installed replay script beside this Python")
    # typer names the shell from the process tree unless told to take it as the value:
    # a test is run from whatever process tree, so name it
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    r = subprocess.run([str(script), "--show-completion", "bash"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0 and "_REPLAY_COMPLETE=complete_bash" in r.stdout
    assert "complete -o default -F _replay_completion replay" in r.stdout


def test_ingest_input_format_and_the_old_name(cli, tmp_path):
    trace = tmp_path / "t.txt"
    trace.write_text(TRACE)
    r = cli("ingest", trace, "-o", tmp_path / "a.replay", "--input-format", "ftrace", "-q")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "a.replay" / "meta.json").read_text())["format"] == "ftrace"
    r = cli("ingest", trace, "-o", tmp_path / "b.replay", "--format", "ftrace", "-q")
    assert r.returncode == 0 and "--input-format" in r.stderr  # kept one release, warned
    assert "--format" not in run_cli("ingest", "--help").stdout  # hidden from help
    assert "--input-format" in run_cli("ingest", "--help").stdout


def test_output_directories_are_created(cli, ds, tmp_path, ingest_text):
    out = tmp_path / "new" / "deeper" / "x.csv"
    r = cli("sql", ds, "SELECT 1 AS one", "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.read_text().splitlines() == ['"one"', "1"]
    trace = tmp_path / "t.txt"
    trace.write_text(TRACE)
    r = cli("ingest", trace, "-o", tmp_path / "made" / "t.replay", "-q")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "made" / "t.replay" / "events.parquet").is_file()


def test_errors_keep_brackets_of_the_sql(cli, ds):
    line = _one_error_line(cli("sql", ds, "SELECT x FROM evnts[b]"))
    assert "evnts[b]" in line


def test_table_cells_are_not_markup(cli, ds):
    r = cli("sql", ds, "SELECT '[user]' AS frame, '[b]x' AS \"[h]\"")
    assert r.returncode == 0, r.stderr
    assert "[user]" in r.stdout and "[b]x" in r.stdout and "[h]" in r.stdout


def test_duckdb_hints_are_kept(cli, ds):
    line = _one_error_line(cli("sql", ds, "SELECT * FROM evnts"))
    assert 'Did you mean "events"' in line
    line = _one_error_line(cli("sql", ds, "SELECT ordr FROM events"))
    assert "Candidate bindings" in line and '"order"' in line


def test_query_needing_a_replay_says_what_to_run(cli, ds):
    line = _one_error_line(cli("query", "memarea_cost", ds))
    assert "replay simulate DATASET" in line and "first" in line
    assert "SELECT" not in line and len(line) < 200


@pytest.mark.parametrize("command", ["simulate", "report"])
def test_unknown_policy_is_named_with_the_choices(command, ds):
    r = run_cli(command, ds, "--policy", "fastest")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "unknown policy 'fastest': choose from free, reclaim, migrate" in r.stderr
    assert "['fastest']" not in r.stderr and "--policy" in r.stderr


def test_simulate_formats_suit_a_pipe(ds):
    args = ("simulate", ds, "--max-order", "3", "--search", "linear", "--policy", "free",
            "--mode", "observed", "-q")
    r = run_cli(*args)  # stdout is a pipe: plain columns, no box drawing
    assert r.returncode == 0, r.stderr
    assert not set(r.stdout) & set("┃━│─┏┓┗┛╭╮╰╯")
    header = r.stdout.splitlines()[0].split()
    assert header[:4] == ["mode", "N", "search", "policy"]
    r = run_cli(*args, "--format", "json")
    runs = json.loads(r.stdout)
    assert {(x["mode"], x["max_order"], x["search"]) for x in runs} >= {
        ("observed", 3, "linear")}
    assert "baseline: N = 10" in r.stderr and "outcomes:" not in r.stdout
    r = run_cli(*args, "--format", "csv")
    assert r.stdout.splitlines()[0].startswith('"mode","max_order"')


def test_sql_output_format_follows_the_suffix(cli, ds, tmp_path):
    q = "SELECT \"order\", count(*) AS n FROM events GROUP BY 1 ORDER BY 1"
    r = cli("sql", ds, q, "-o", tmp_path / "x.parquet")
    assert r.returncode == 0, r.stderr
    assert pq.read_table(tmp_path / "x.parquet").to_pylist() == [
        {"order": 0, "n": 2}, {"order": 4, "n": 1}]
    r = cli("sql", ds, q, "-o", tmp_path / "x.json")
    assert json.loads((tmp_path / "x.json").read_text())[1] == {"order": 4, "n": 1}


def test_perf_data_from_another_machine_warns_at_ingest(cli, tmp_path):
    """perf-g was recorded on another kernel than this machine's: its kernel frames stay
    unnamed, and the warning says how to name them."""
    r = cli("ingest", SAMPLES / "perf-g.perf.data", "-o", tmp_path / "g.replay", "-q")
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "g.replay" / "meta.json").read_text())["stacks"]
    if not meta.get("unknown_kernel_frames"):
        pytest.skip("perf-g's kernel symbols are this machine's")
    assert "--kallsyms" in r.stderr and str(meta["unknown_kernel_frames"]) in r.stderr


def test_report_prints_the_verdict_and_makes_its_directory(tmp_path):
    out = tmp_path / "new" / "r.html"
    r = run_cli("report", SAMPLES / "ftrace-thp.dat", "--snapshots",
                SAMPLES / "ftrace-thp.snapshots", "--max-order", "8..10", "--search",
                "linear", "--policy", "free,migrate", "-o", out, "-q", "--force")
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    rec = json.loads(out.with_suffix(".json").read_text())["recommendation"]
    assert last == f"verdict: {rec['headline']}"
    assert (f"N = {rec['max_order']}" in last if rec["max_order"] is not None
            else "Not enough evidence" in last or "no candidate" in last.lower())
    assert ROOT not in out.parents


def _expected_paths(dataset: Path, order: int, depth: int) -> dict[str, int]:
    """top_stacks' call paths computed in Python from the Parquet files: frame names
    without offsets, page-allocator frames skipped, unnamed user frames as one [user]."""
    from collections import Counter

    from replay.queries import named_query

    skip = re.compile(named_query("top_stacks").bind({})["skip"])
    frames: dict[int, list[tuple[int, str]]] = {}
    for f in pq.read_table(dataset / "stacks.parquet").to_pylist():
        if f["symbol"] is not None and skip.search(f["symbol"]):
            continue
        name = (re.sub(r"\+0x[0-9a-fA-F]+$", "", f["symbol"]) if f["symbol"] is not None
                else f"[{f['dso'] or 'user'}]" if f["context"] == "user" else hex(f["addr"]))
        frames.setdefault(f["stack_id"], []).append((f["depth"], name))
    paths = {}
    for sid, fs in frames.items():
        names: list[str] = []
        for _, name in sorted(fs):
            if not (name.startswith("[") and names and names[-1] == name):
                names.append(name)
        paths[sid] = " <- ".join(names[:depth])
    events = pq.read_table(dataset / "events.parquet").to_pylist()
    return Counter(paths[e["stack_id"]] for e in events if e["event"] == "mm_page_alloc"
                   and e["order"] == order and e["stack_id"] in paths)


def test_top_stacks_does_not_split_on_user_addresses(cli, tmp_path):
    """perf-g's user frames have no symbol and no dso; the same kernel path reached from
    different user addresses (other processes, ASLR) is one call path."""
    out = tmp_path / "g.replay"
    r = cli("ingest", SAMPLES / "perf-g.perf.data", "-o", out, "-q", "--kallsyms",
            SAMPLES / "perf.kallsyms.xz")
    assert r.returncode == 0, r.stderr
    r = cli("query", "top_stacks", out, "-p", "order=0", "-p", "top=5", "-p", "depth=8",
            "--format", "json")
    rows = json.loads(r.stdout)
    expected = _expected_paths(out, 0, 8)
    assert [(x["call_path"], x["requests"]) for x in rows] == sorted(
        expected.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert not any(re.search(r"0x[0-9a-f]{6,}", x["call_path"]) for x in rows)
    assert rows[0]["call_path"].endswith("<- [user]")


def test_text_cut_inside_a_value_is_malformed_not_a_flag(cli, tmp_path):
    """The real ftrace text cut after `gfp_flags=GFP_HI` of a GFP_HIGHUSER_MOVABLE line:
    that line is malformed (and the input truncated), the lines before are all there."""
    import lzma

    text = lzma.decompress((SAMPLES / "ftrace-thp.trace.txt.xz").read_bytes())
    at = text.index(b"gfp_flags=GFP_HIGHUSER_MOVABLE", len(text) // 2)
    cut = tmp_path / "cut.txt"
    cut.write_bytes(text[: at + len(b"gfp_flags=GFP_HI")])
    full = tmp_path / "full.txt"
    full.write_bytes(text)
    for path in (cut, full):
        r = cli("ingest", path, "-o", tmp_path / f"{path.stem}.replay", "-q")
        assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "cut.replay" / "meta.json").read_text())
    assert meta["truncated"] is True and meta["malformed"]["total"] == 1
    got = pq.read_table(tmp_path / "cut.replay" / "events.parquet")
    whole = pq.read_table(tmp_path / "full.replay" / "events.parquet")
    assert "GFP_HI" not in set(got.column("gfp_flags").to_pylist())
    n = text[: text.rindex(b"\n", 0, at)].count(b": mm_page_")  # whole lines before it
    assert got.num_rows == n
    cols = ["ts_ns", "pfn", "order", "gfp_flags"]
    assert got.select(cols).to_pylist() == whole.slice(0, n).select(cols).to_pylist()
