"""Shared test helpers: running the CLI as a user would, and ingesting inline traces."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_traces"


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels() -> bool:
    """Build the readers' compiled kernels before any test runs (the first build takes
    about 20 s), rather than inside whichever test first reads a trace."""
    from ingest import kernels

    return kernels.load()


def run_cli(*args: str, cwd: Path | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess:
    """`replay ARGS...` in a subprocess, as a user would run it (`timeout`: a hang guard)."""
    return subprocess.run(
        [sys.executable, "-m", "replay", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=timeout,
    )


@pytest.fixture
def cli(capsys, monkeypatch):
    """`replay ARGS...` in this process, through the entry point the `replay` script runs
    (without the cost of starting Python): a CompletedProcess with the exit code and both
    streams."""
    from replay.cli import main

    def _run(*args: str) -> subprocess.CompletedProcess:
        monkeypatch.setattr(sys, "argv", ["replay", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code or 0
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return _run


@pytest.fixture
def ingest_text(tmp_path):
    """Ingest inline trace text; returns a function giving the dataset path."""
    from replay.ingestion import ingest

    def _ingest(text: str, fmt: str | None = None, name: str = "trace.txt", **kw) -> Path:
        src = tmp_path / name
        src.write_text(textwrap.dedent(text).lstrip("\n"))
        return ingest(src, tmp_path / (name + ".replay"), fmt=fmt, quiet=True, **kw)

    return _ingest


def rows(dataset: Path, sql: str) -> list[tuple]:
    """Rows of `sql` over the dataset's events (as view `events`)."""
    con = duckdb.connect()
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{dataset}/events.parquet')")
    return con.execute(sql).fetchall()


def one_line_error(r: subprocess.CompletedProcess) -> str:
    """The one `error: ...` line of a command that failed with status 1, no traceback."""
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]
