"""The engine's announced one-time compile compiles what a real sweep runs."""

from __future__ import annotations

from replay.engine.observed import observe_entries
from replay.engine.options import SimOptions
from replay.engine.simulate import run_sweep
from replay.engine.simulated import replay_simulated
from replay.engine.warmup import compile_engine
from tests.conftest import SAMPLES


def test_warm_up_compiles_the_signatures_a_real_sweep_uses(tmp_path):
    """After `compile_engine`, a sweep over a real trace adds no compiled signature (it
    would compile again, silently, after the announced compile)."""
    from replay.ingestion import ingest

    options = SimOptions(max_orders=(5,), searches=("linear",), policies=("free",), jobs=1,
                         snapshots=str(SAMPLES / "ftrace-thp.snapshots"))
    compile_engine(options)
    before = (set(replay_simulated.signatures), set(observe_entries.signatures))
    assert before[0] and before[1]
    ds = ingest(SAMPLES / "ftrace-thp.trace.txt.xz", tmp_path / "thp.replay", quiet=True)
    run_sweep(ds, options, quiet=True)
    assert (set(replay_simulated.signatures), set(observe_entries.signatures)) == before


def test_cache_files_of_some_replays_do_not_make_the_engine_compiled(tmp_path, monkeypatch):
    """Only `compile_engine`'s mark says the engine is compiled: a cache holding the two
    replays' files from a process that ran some configurations still compiles, announced."""
    import numba

    from replay.engine import warmup

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    for name in ("simulated.replay_simulated-1.py311.nbi", "observed.observe_entries-1.nbi"):
        (tmp_path / name).write_bytes(b"")
    assert not warmup.engine_cached()
    (tmp_path / warmup.ENGINE_MARK).touch()
    assert warmup.engine_cached()


def test_the_engine_compiles_in_a_child_beside_the_with_body(tmp_path, monkeypatch):
    """`compiling_beside` runs the compile in another process while the body runs, and
    the `with` ends only once that process has (the real compile is stubbed: a minute)."""
    import os
    import time

    from replay.engine import warmup

    marks = tmp_path / "marks"

    def compile_stub(options):
        time.sleep(0.5)
        marks.write_text(f"{os.getpid()}\n")

    monkeypatch.setattr(warmup, "engine_cached", lambda: False)
    monkeypatch.setattr(warmup, "compile_engine", compile_stub)
    monkeypatch.setattr(warmup, "may_fork", lambda: True)  # earlier tests' threads: harmless here
    t = time.monotonic()
    with warmup.compiling_beside(SimOptions(), quiet=True):
        body = time.monotonic() - t
        assert not marks.exists()  # the body is not kept waiting for the compile
    assert body < 0.5 <= time.monotonic() - t
    assert int(marks.read_text()) != os.getpid()


def test_a_compiled_engine_is_loaded_before_the_sweep_forks():
    """With the engine in numba's cache, `announce_and_compile` still loads both replays
    into this process (a fresh one, to see it), so that the sweep's forked workers
    inherit them instead of each loading them on its first replay."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = """
from replay.engine import warmup
from replay.engine.options import SimOptions
warmup.compile_engine(SimOptions(jobs=1))  # into the cache, if this version was not there
print(warmup.engine_cached())
"""
    check = """
from replay.engine import warmup
from replay.engine.observed import observe_entries
from replay.engine.options import SimOptions
from replay.engine.simulated import replay_simulated
before = len(replay_simulated.signatures) + len(observe_entries.signatures)
warmup.announce_and_compile(SimOptions(jobs=1), quiet=True)
print(before, bool(replay_simulated.signatures), bool(observe_entries.signatures))
"""
    run = lambda text: subprocess.run([sys.executable, "-c", text], cwd=ROOT, text=True,
                                      capture_output=True, check=False, timeout=600)
    cached = run(code)
    assert cached.returncode == 0 and cached.stdout.split() == ["True"], cached.stderr
    loaded = run(check)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["0", "True", "True"]
