"""Bad input: one line naming the file and what was wrong, exit != 0, nothing written."""

from __future__ import annotations

import gzip

import pytest

from tests.conftest import run_cli


def _check_refused(result, path, why: str, out) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and why in lines[0], lines[0]
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))


@pytest.mark.parametrize(
    "content, why",
    [
        (b"", "empty file"),
        (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4, "binary file"),
        (b"hello\nworld\n", "not a recognized trace"),
        (
            b"# tracer: nop\n     bash-1 [000] .....  1.000001: sched_switch: prev_comm=a\n",
            "no kmem page events",
        ),
        (gzip.compress(b"# tracer: nop\n"), "no kmem page events"),
    ],
    ids=["empty", "binary", "not-a-trace", "no-page-events", "gzip-no-page-events"],
)
def test_bad_file_refused(tmp_path, content, why):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    out = tmp_path / "out"
    _check_refused(run_cli("ingest", path, "-o", out), path, why, out)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.dat"
    out = tmp_path / "out"
    _check_refused(run_cli("ingest", path, "-o", out), path, "no such file", out)


def test_directory(tmp_path):
    out = tmp_path / "out"
    _check_refused(run_cli("ingest", tmp_path, "-o", out), tmp_path, "is a directory", out)


def test_binary_in_text_forced(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"# tracer: nop\n\x00\x01\x02\n")
    out = tmp_path / "out"
    _check_refused(run_cli("ingest", path, "--input-format", "ftrace", "-o", out), path,
                   "binary data in a text trace", out)


def test_trace_dat_forced_as_text_names_the_format(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"\x17\x08\x44tracing7\x00\x00\x08" + bytes(64))
    out = tmp_path / "out"
    _check_refused(run_cli("ingest", path, "--input-format", "ftrace", "-o", out), path,
                   "a trace.dat file, not text: leave out --input-format", out)
