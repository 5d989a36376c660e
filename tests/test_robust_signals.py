"""Signals reach a real `replay` child process: Ctrl-C (SIGINT) and SIGTERM exit 130 with
"interrupted" and leave nothing half-written; SIGKILL leaves a temporary that the next run
into the same place removes; forked workers die with their parent."""

from __future__ import annotations

import glob
import lzma
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from replay.cli import EXIT_INTERRUPTED
from tests.conftest import ROOT, SAMPLES

#: copies of the real ftrace sample in the long input (~100 MB: seconds of ingest)
COPIES = 30


@pytest.fixture(scope="module")
def long_trace(tmp_path_factory) -> Path:
    """A real ftrace text trace long enough to be interrupted mid-ingest."""
    one = lzma.open(SAMPLES / "ftrace-thp.trace.txt.xz").read()
    path = tmp_path_factory.mktemp("long") / "long.trace.txt"
    with open(path, "wb") as f:
        for _ in range(COPIES):
            f.write(one)
    return path


def _replay(*args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "replay", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(cond, proc: subprocess.Popen, what: str) -> None:  # noqa: ANN001
    """Poll until `cond()`; fail if `proc` ends first."""
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"replay ended (rc {proc.returncode}) before {what}: "
                        f"{proc.stderr.read()}")
        time.sleep(0.005)


def _temporaries(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.*"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_ingest_exits_130_and_writes_nothing(long_trace, tmp_path, signum):
    out = tmp_path / "out.replay"
    proc = _replay("ingest", long_trace, "-o", out, "-q")
    _wait_for(lambda: any(p.name.startswith(".out.replay.tmp-") for p in
                          tmp_path.iterdir()), proc, "its temporary dataset appeared")
    time.sleep(0.3)  # into the Parquet writing
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED == 130
    assert err.strip() == "interrupted"
    assert not out.exists()
    assert _temporaries(out) == []  # no temporary dataset, no lock file


def test_sigkill_leftover_is_removed_by_the_next_run(long_trace, tmp_path):
    out = tmp_path / "out.replay"
    proc = _replay("ingest", long_trace, "-o", out, "-q")
    tmp = out.with_name(f".{out.name}.tmp-{proc.pid}")
    _wait_for(lambda: (tmp / "events.parquet").exists(), proc, "it wrote Parquet")
    proc.kill()
    proc.wait(timeout=60)
    assert tmp.is_dir()  # SIGKILL cannot be handled: the temporary stays ...
    small = tmp_path / "small.txt"
    small.write_bytes(lzma.open(SAMPLES / "ftrace-thp.trace.txt.xz").read())
    done = subprocess.run([sys.executable, "-m", "replay", "ingest", small, "-o", out, "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not tmp.exists()  # ... until the next run into the same place
    assert _temporaries(out) == []
    assert (out / "meta.json").is_file()


def test_sigint_during_sql_exits_130_without_traceback(tmp_path):
    from replay.ingestion import ingest

    src = tmp_path / "t.txt"
    src.write_bytes(lzma.open(SAMPLES / "ftrace-thp.trace.txt.xz").read())
    ds = ingest(src, tmp_path / "t.replay", quiet=True)
    proc = _replay("sql", ds, "SELECT sum(a.range * b.range) FROM range(100000000) a, "
                   "range(100000000) b")
    time.sleep(4)  # imports, then the query (which runs for hours)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err and "interrupted" in err
    assert out == ""


_POOL_SCRIPT = textwrap.dedent("""
    import faulthandler, signal, sys, time
    from replay import signals
    from replay.workers import completed, fork_pool

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's diagnosis
    # handlers of its own, as the CLI's: a run started in the background by a script
    # inherits SIGINT ignored, and Python then leaves it so
    signals.install()

    def work(i):
        time.sleep(3600)

    with fork_pool(2) as pool:
        futures = [pool.submit(work, i) for i in range(4)]
        while len(pool._processes) < 2:
            time.sleep(0.01)
        print(*pool._processes, flush=True)
        for f in completed(futures):  # as the sweep waits
            f.result()
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_workers_die_with_their_parent(signum):
    proc = subprocess.Popen([sys.executable, "-c", _POOL_SCRIPT], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert len(workers) == 2 and all(map(_alive, workers))
    proc.send_signal(signum)
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # say where it hung
        masks = [Path(t).read_text() for t in glob.glob(f"/proc/{proc.pid}/task/*/status")]
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
        proc.kill()
        _, err = proc.communicate()
        pytest.fail("no exit after the signal; threads:\n" + "\n".join(
            " ".join(line for line in m.splitlines() if line.startswith(("Name", "Sig", "Shd")))
            for m in masks) + "\n" + err[-3000:])
    deadline = time.monotonic() + 30
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, workers))


def test_stale_temporaries_of_dead_processes_only(tmp_path):
    from replay.atomic import TMP, remove_stale, sibling

    out = tmp_path / "x.replay"
    gone = subprocess.Popen(["true"])  # a PID that is gone
    gone.wait()
    stale = sibling(out, TMP, gone.pid)
    stale.mkdir()
    (stale / "events.parquet").write_bytes(b"partial")
    mine = sibling(out, TMP)  # this process: alive
    mine.mkdir()
    other = tmp_path / f".y.replay.tmp-{gone.pid}"  # another output's: not ours to judge
    other.mkdir()
    assert remove_stale(out) == [stale]
    assert not stale.exists() and mine.exists() and other.exists()
    os.rmdir(mine)


@pytest.mark.parametrize("command", ["simulate", "report"])
def test_sigint_during_a_sweep_exits_130(long_trace, tmp_path, command):
    ds = tmp_path / "long.replay"
    done = subprocess.run([sys.executable, "-m", "replay", "ingest", long_trace, "-o", ds,
                           "-q"], cwd=ROOT, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr
    before = sorted(p.name for p in ds.iterdir())
    # --check validates the simulator after every sample, and max orders from 1 replay
    # the most: sweeps of about 50 s (simulate) and 27 s (report) here, where the default
    # ones had become shorter than the 5 s this test waits before its signal
    low = ("--max-order", "1..10")
    args = {"simulate": ("simulate", ds, "-j", "1", "-q", "--check", *low),
            "report": ("report", ds, "-q", *low)}[command]
    proc = _replay(*args)
    time.sleep(5)  # past the imports, into the replays (minutes of them)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (out, err)
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
    assert sorted(p.name for p in ds.iterdir()) == before  # no sim/, report or temporary


def test_signal_inside_an_llvmlite_callback_is_raised_after_it(tmp_path):
    """ctypes swallows an exception raised in a callback from LLVM (numba compiling), and
    the compile fails later with a RuntimeError: the interrupt waits for the callback."""
    from replay import signals

    callback = tmp_path / "llvmlite" / "binding" / "executionengine.py"  # its path only
    code = compile(textwrap.dedent("""
        import os, signal, time
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)  # the signal arrived; the callback must still finish
        state["done"] = True
    """), str(callback), "exec")
    state = {"done": False}
    previous = signals.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            exec(code, {"state": state})
            assert state["done"]
            time.sleep(10)  # the deferred KeyboardInterrupt lands here
        assert state["done"]
        assert signals.received() == signal.SIGINT
    finally:
        signals.restore(previous)


def test_signal_during_an_import_is_raised_after_it(tmp_path, monkeypatch):
    """A module interrupted half-way stays broken in sys.modules (pandas, imported lazily
    by pyarrow, then failed with AttributeError): the interrupt waits for the import."""
    import importlib

    from replay import signals

    (tmp_path / "slow_module.py").write_text(textwrap.dedent("""
        import os, signal, time
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)  # the signal arrived; the import must still finish
        DONE = True
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    previous = signals.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            module = importlib.import_module("slow_module")
            assert module.DONE
            time.sleep(10)  # the deferred KeyboardInterrupt lands here
        assert sys.modules["slow_module"].DONE
        assert signals.received() == signal.SIGINT
    finally:
        signals.restore(previous)
        sys.modules.pop("slow_module", None)
    assert signals.received() is None
    signals.check()  # nothing pending for the code that runs next in this process
