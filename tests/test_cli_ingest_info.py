"""`replay ingest` and `replay info` as a user runs them: output, overwrite rules, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli as run_subprocess

TRACE = """\
# tracer: nop
# entries-in-buffer/entries-written: 3/3   #P:2
            bash-6300    [001] .....   441.670898: mm_page_alloc: page=00000000a2226c3b pfn=0x10a9e6 order=9 migratetype=1 gfp_flags=GFP_TRANSHUGE
            bash-6300    [001] .....   441.670999: mm_page_free: page=00000000a2226c3b pfn=0x10a9e6 order=9
            bash-6300    [000] .....   441.671000: sched_switch: prev_comm=bash
CPU:0 [LOST 5 EVENTS]
"""


def _ingest(tmp_path, cli, *extra):
    src = tmp_path / "t.txt"
    src.write_text(TRACE)
    out = tmp_path / "t.replay"
    return src, out, cli("ingest", src, "-o", out, *extra)


def test_info_human_and_json(tmp_path, cli):
    src, out, r = _ingest(tmp_path, cli)
    assert r.returncode == 0, r.stderr
    assert "5 events lost" in r.stderr  # warned once, on stderr
    human = cli("info", out)
    assert human.returncode == 0
    text = human.stdout
    for expected in ("format        ftrace", "events        2", "mm_page_alloc", "lost events   5",
                     "cpu 0", "other events  1", "cpus          2", "duration      0.000101 s"):
        assert expected in text, text
    meta = json.loads(cli("info", out, "--json").stdout)
    assert meta["event_counts"] == {"mm_page_alloc": 1, "mm_page_free": 1}
    assert meta["source"]["path"] == str(src.resolve()) and len(meta["source"]["sha256"]) == 64
    assert meta["time_span"] == {"first_ts_ns": 441670898000, "last_ts_ns": 441670999000,
                                 "duration_ns": 101000}


def test_refuses_to_overwrite_without_force(tmp_path, cli):
    _, out, r = _ingest(tmp_path, cli)
    assert r.returncode == 0
    before = (out / "meta.json").read_text()
    again = run_subprocess("ingest", tmp_path / "t.txt", "-o", out)
    assert again.returncode != 0 and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    assert (out / "meta.json").read_text() == before
    (out / "stale").write_text("left by the user")  # --force replaces the whole directory
    forced = cli("ingest", tmp_path / "t.txt", "-o", out, "--force")
    assert forced.returncode == 0 and (out / "meta.json").exists()
    assert not (out / "stale").exists()


def test_failed_ingest_keeps_old_dataset_and_leaves_nothing(tmp_path, cli):
    _, out, r = _ingest(tmp_path, cli)
    assert r.returncode == 0
    bad = tmp_path / "bad.txt"
    bad.write_text(TRACE + "   x-1 [000] .....   441.671001: mm_page_free: pfn=0xzz order=0\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    failed = cli("ingest", bad, "-o", out, "--force", "--strict")
    assert failed.returncode != 0
    assert f"{bad}:line 7: malformed page event" in failed.stderr
    assert (out / "events.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary left


def test_info_on_something_else(tmp_path, cli):
    r = cli("info", tmp_path)
    assert r.returncode != 0 and "not a replay dataset" in r.stderr
    assert "Traceback" not in r.stderr


def test_info_of_a_recorded_dataset_names_its_host():
    """`replay record` datasets have no source file: no `sha256 None` line."""
    from replay.info import render_info

    meta = {"source": {"path": "/sys/kernel/tracing", "host": "box"}, "format": "tracefs"}
    text = render_info(Path("rec.replay"), meta)
    assert text.splitlines()[1:3] == ["source        /sys/kernel/tracing", "recorded on   box"]
    assert "sha256" not in text
