"""Output paths: `--force` replaces only a dataset, `-o` never destroys an input, two
writers of one output do not both "succeed", and a full disk is a one-line error with
nothing left behind."""

from __future__ import annotations

import errno
import lzma
import os
import subprocess
from pathlib import Path

import pytest

from replay.atomic import OutputLock
from tests.conftest import SAMPLES, one_line_error, run_cli


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> Path:
    """A real ftrace text trace (~3 MB)."""
    path = tmp_path_factory.mktemp("in") / "thp.trace.txt"
    path.write_bytes(lzma.open(SAMPLES / "ftrace-thp.trace.txt.xz").read())
    return path


def _hidden(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def test_force_refuses_a_directory_that_is_not_a_dataset(trace, tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "keep.jpg").write_bytes(b"precious")
    err = one_line_error(run_cli("ingest", trace, "-o", out, "--force", "-q"))
    assert "not a replay dataset" in err and "--force replaces only datasets" in err
    assert (out / "keep.jpg").read_bytes() == b"precious"
    assert _hidden(tmp_path) == []


def test_force_refuses_a_directory_with_a_foreign_meta_json(trace, tmp_path):
    out = tmp_path / "other"
    out.mkdir()
    (out / "meta.json").write_text('{"name": "someone else\'s"}')
    (out / "events.parquet").write_bytes(b"not ours")
    one_line_error(run_cli("ingest", trace, "-o", out, "--force", "-q"))
    assert (out / "events.parquet").read_bytes() == b"not ours"


def test_force_refuses_a_file(trace, tmp_path):
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    err = one_line_error(run_cli("ingest", trace, "-o", out, "--force", "-q"))
    assert "a file that is not a replay dataset" in err
    assert out.read_text() == "keep me"
    assert _hidden(tmp_path) == []


def test_force_replaces_a_dataset(trace, tmp_path):
    out = tmp_path / "ds"
    assert run_cli("ingest", trace, "-o", out, "-q").returncode == 0
    (out / "marker").write_text("the old dataset")
    r = run_cli("ingest", trace, "-o", out, "--force", "-q")
    assert r.returncode == 0, r.stderr
    assert (out / "meta.json").is_file() and not (out / "marker").exists()  # replaced
    assert _hidden(tmp_path) == []


@pytest.mark.parametrize("force", [False, True])
def test_output_equal_to_the_input_is_refused(trace, tmp_path, force):
    src = tmp_path / "t.txt"
    src.write_bytes(trace.read_bytes())
    before = src.read_bytes()
    err = one_line_error(run_cli("ingest", src, "-o", src, "-q", *(["--force"] * force)))
    assert "would replace the input" in err
    assert src.read_bytes() == before
    assert _hidden(tmp_path) == []


def test_output_holding_the_input_is_refused(tmp_path):
    d = tmp_path / "threads.perf.data"
    d.mkdir()
    for f in (SAMPLES / "perf-threads.perf.data").iterdir():
        (d / f.name).write_bytes(lzma.open(f).read())
    err = one_line_error(run_cli("ingest", d / "data", "-o", d, "--force", "-q"))
    assert "would replace the input" in err
    assert sorted(p.name for p in d.iterdir()) == ["data", "data.0", "data.1"]


def test_second_writer_fails_cleanly(trace, tmp_path):
    out = tmp_path / "ds"
    with OutputLock(out):  # another replay process is writing `out`
        err = one_line_error(run_cli("ingest", trace, "-o", out, "-q"))
        assert f"another replay process (pid {os.getpid()}) is writing it" in err
        assert not out.exists()
    assert run_cli("ingest", trace, "-o", out, "-q").returncode == 0
    assert _hidden(tmp_path) == []  # the lock file goes with its writer


def test_two_concurrent_ingests_one_wins(trace, tmp_path):
    import sys

    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "replay", "ingest", str(trace), "-o", str(out), "-q"]
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    # one writes; the other finds it locked or, if it came second, already there
    assert codes == [0, 1], results
    err = [e for rc, e in results if rc][0]
    assert "is writing it" in err or "already exists" in err
    assert (out / "meta.json").is_file()


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "Error writing bytes to file")


def test_disk_full_while_writing_parquet(trace, tmp_path, cli, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.setattr(pq.ParquetWriter, "write_table", _enospc)
    out = tmp_path / "ds"
    r = cli("ingest", str(trace), "-o", str(out), "-q")
    assert r.returncode == 1
    assert r.stderr.strip() == f"error: {out}: cannot write: No space left on device"
    assert not out.exists() and _hidden(tmp_path) == []


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 16 KiB tmpfs, smaller than any dataset: a real full disk (needs root; skipped
    elsewhere)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)],
            capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_disk_full_on_a_real_filesystem(trace, tiny_tmpfs):
    out = tiny_tmpfs / "ds"
    err = one_line_error(run_cli("ingest", trace, "-o", out, "-q"))
    assert err == f"error: {out}: cannot write: No space left on device"
    assert list(tiny_tmpfs.iterdir()) == []


def test_sql_output_on_a_full_disk_and_into_a_directory(trace, tiny_tmpfs, tmp_path):
    ds = tmp_path / "ds"
    assert run_cli("ingest", trace, "-o", ds, "-q").returncode == 0
    big = tiny_tmpfs / "events.csv"
    err = one_line_error(run_cli("sql", ds, "SELECT * FROM events", "--format", "csv",
                                  "-o", big))
    assert err == f"error: {big}: cannot write: No space left on device"
    assert list(tiny_tmpfs.iterdir()) == []
    err = one_line_error(run_cli("sql", ds, "SELECT 1", "-o", tmp_path))
    assert err == f"error: {tmp_path}: is a directory, not a file to write"


def test_report_output_messages(trace, tmp_path, monkeypatch):
    ds = tmp_path / "ds"
    assert run_cli("ingest", trace, "-o", ds, "-q").returncode == 0
    d = tmp_path / "reports"
    d.mkdir()
    err = one_line_error(run_cli("report", ds, "-o", d, "--force", "-q",
                                  "--max-order", "9"))
    assert err == (f"error: {d}: is a directory; give the report's file name, "
                   f"e.g. {d / 'report.html'}")
    # a write that fails names the file, never "None" nor a temporary
    from ingest.errors import OutputError
    from replay.atomic import write_files

    monkeypatch.setattr("builtins.open", _full_disk_open(open))
    with pytest.raises(OutputError) as e:
        write_files([d / "report.html"], ["<html>"])
    assert str(e.value) == f"{d / 'report.html'}: cannot write: No space left on device"
    monkeypatch.undo()
    assert list(d.iterdir()) == []


def _full_disk_open(real):  # noqa: ANN001, ANN202
    class Full:
        def __init__(self, f):  # noqa: ANN001
            self.f = f

        def __enter__(self):  # noqa: ANN204
            return self

        def __exit__(self, *a):  # noqa: ANN002, ANN204
            self.f.close()

        def write(self, text):  # noqa: ANN001, ANN202
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.f.name)

    def fake(path, mode="r", *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        f = real(path, mode, *args, **kwargs)
        return Full(f) if "w" in mode else f

    return fake
