"""Damaged datasets and queries at the edge: one-line errors and non-zero exits from
info, sql, simulate and report; SQL that starts with a comment; DuckDB's memory cap."""

from __future__ import annotations

import json
import lzma
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, run_cli


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from replay.ingestion import ingest

    d = tmp_path_factory.mktemp("ds")
    src = d / "thp.trace.txt"
    src.write_bytes(lzma.open(SAMPLES / "ftrace-thp.trace.txt.xz").read())
    return ingest(src, d / "thp.replay", quiet=True)


@pytest.fixture
def damaged(dataset, tmp_path):
    """A copy of the dataset, to damage."""
    return Path(shutil.copytree(dataset, tmp_path / "damaged.replay"))


def _one_line_error(r: subprocess.CompletedProcess, code: int = 1) -> str:
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


COMMANDS = {
    "info": lambda ds: ("info", ds),
    "sql": lambda ds: ("sql", ds, "SELECT count(*) FROM events"),
    "simulate": lambda ds: ("simulate", ds, "--max-order", "9", "--mode", "observed",
                            "--search", "linear", "--policy", "free", "-q"),
    "report": lambda ds: ("report", ds, "--max-order", "9", "-q"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("meta, why", [
    ("[]", "damaged: a JSON list, not an object"),
    ('{"events": "many"}', "damaged: field 'events' is str"),
    ('{"events": 1, "time_span": {"first_ts_ns": "x"}}',
     "damaged: field time_span.first_ts_ns is str"),
    ('{"events": 1, "snapshots": [0]}', "damaged: field snapshots[0] is int"),  # atheris
    ("{", "unreadable: Expecting property name enclosed in double quotes"),
])
def test_damaged_meta_json_is_a_one_line_error(damaged, command, meta, why):
    (damaged / "meta.json").write_text(meta)
    err = _one_line_error(run_cli(*COMMANDS[command](damaged)))
    assert err.startswith(f"error: {damaged / 'meta.json'}: {why}")
    assert not (damaged / "sim").exists() and not (damaged / "report.html").exists()


def test_truncated_events_parquet_fails_info(damaged):
    p = damaged / "events.parquet"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    err = _one_line_error(run_cli("info", damaged))
    assert err.startswith(f"error: {p}: damaged: ")


def test_events_parquet_of_another_dataset_fails_info(damaged, tmp_path):
    meta = json.loads((damaged / "meta.json").read_text())
    meta["events"] += 1
    (damaged / "meta.json").write_text(json.dumps(meta))
    err = _one_line_error(run_cli("info", damaged))
    assert err == (f"error: {damaged / 'events.parquet'}: damaged: holds "
                   f"{meta['events'] - 1} events, meta.json says {meta['events']}")


def test_empty_sql_is_an_error(dataset):
    for query in ("", "   ", "-- nothing but a comment"):
        r = run_cli("sql", dataset, query)
        assert r.returncode != 0 and "Traceback" not in r.stderr
        assert r.stdout == ""


@pytest.mark.parametrize("args", [
    ("{ds}", "-- how many\nSELECT count(*) AS n FROM events"),  # positional
    ("{ds}", "--", "-- how many\nSELECT count(*) AS n FROM events"),  # after --
    ("{ds}", "--x\nSELECT count(*) AS n FROM events"),
])
def test_sql_starting_with_a_comment(dataset, args):
    meta = json.loads((dataset / "meta.json").read_text())
    r = run_cli("sql", "--format", "json", *(a.format(ds=dataset) for a in args))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"n": meta["events"]}]


@pytest.mark.parametrize("window", ["0", "-5", "nan"])
def test_request_rate_window_must_be_positive(dataset, window):
    err = _one_line_error(run_cli("query", "request_rate", dataset, "-p",
                                  f"window_ms={window}"))
    assert err == f"error: parameter window_ms: '{window}' is not greater than 0"


def test_memory_limit_default_and_option(dataset, monkeypatch):
    import os

    from replay.database import MEMORY_SHARE, default_memory_limit, open_datasets

    monkeypatch.delenv("REPLAY_MEMORY_LIMIT", raising=False)
    ram_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 20
    assert default_memory_limit() == f"{int(ram_mib * MEMORY_SHARE)}MiB"
    q = "SELECT current_setting('memory_limit') AS m"
    with open_datasets([dataset]) as db:
        got = db.fetch(q).column("m")[0].as_py()
    want = int(ram_mib * MEMORY_SHARE) / 1024  # DuckDB prints GiB with one decimal
    assert got.endswith("GiB") and abs(float(got.split()[0]) - want) < 0.1
    r = run_cli("sql", dataset, q, "--memory-limit", "1GiB", "--format", "json")
    assert json.loads(r.stdout) == [{"m": "1.0 GiB"}], r.stderr
    monkeypatch.setenv("REPLAY_MEMORY_LIMIT", "512MiB")
    with open_datasets([dataset]) as db:
        assert db.fetch(q).column("m")[0].as_py() == "512.0 MiB"
    err = _one_line_error(run_cli("sql", dataset, "SELECT 1", "--memory-limit", "lots"))
    assert err.startswith("error: memory limit 'lots': ")


def test_sandbox_still_holds_after_the_memory_limit(dataset):
    for q in ("SET memory_limit = '100GiB'", "SELECT * FROM read_text('/etc/passwd')",
              "COPY (SELECT 1) TO '/tmp/x.csv'"):
        r = run_cli("sql", dataset, q)
        assert r.returncode == 1 and "Traceback" not in r.stderr, (q, r.stderr)
