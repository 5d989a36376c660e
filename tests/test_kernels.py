"""The readers' kernels: the ahead-of-time build serves runs without numba, and gives
the same datasets as numba's JIT."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT, SAMPLES

# what a run imports when it reads a trace.dat and a perf.data, through the CLI
_IMPORTS = """
import sys
from replay.cli import main
for trace, out in zip(sys.argv[1::2], sys.argv[2::2]):
    sys.argv = ["replay", "ingest", trace, "-o", out, "--force"]
    try:
        main()
    except SystemExit as e:
        assert not e.code, e.code
print("imported:", *sorted(m for m in sys.modules if m.split(".")[0] in ("numba", "llvmlite")))
"""

_TRACES = ("ftrace-thp.dat", "perf-g.perf.data", "perf-pipe.perf-pipe.data")


def _ingest_all(tmp_path, name: str, **env: str) -> tuple[str, list]:
    (tmp_path / name).mkdir()
    args = []
    for trace in _TRACES:
        args += [str(SAMPLES / trace), str(tmp_path / name / trace)]
    done = subprocess.run([sys.executable, "-c", _IMPORTS, *args], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, **env}, check=True)
    tables = [(pq.read_table(tmp_path / name / t / "events.parquet"),
               pq.read_table(tmp_path / name / t / "stacks.parquet")
               if (tmp_path / name / t / "stacks.parquet").exists() else None)
              for t in _TRACES]
    imported = done.stdout.splitlines()[-1]
    assert imported.startswith("imported:")
    return imported.removeprefix("imported:").strip(), tables


def test_compiled_runs_do_not_import_numba(compiled_kernels, tmp_path):
    if not compiled_kernels:
        pytest.skip("the compiled kernels could not be built here (no C compiler?)")
    numba_modules, _ = _ingest_all(tmp_path, "aot")
    assert numba_modules == ""


def test_compiled_and_jit_datasets_are_equal(compiled_kernels, tmp_path):
    if not compiled_kernels:
        pytest.skip("the compiled kernels could not be built here (no C compiler?)")
    _, aot = _ingest_all(tmp_path, "aot")
    numba_modules, jit = _ingest_all(tmp_path, "jit", REPLAY_JIT="1")
    assert "numba" in numba_modules.split()
    for trace, (a_events, a_stacks), (j_events, j_stacks) in zip(_TRACES, aot, jit):
        assert a_events.num_rows > 1000, trace
        assert a_events.equals(j_events), trace
        assert (a_stacks is None) == (j_stacks is None), trace
        if a_stacks is not None:
            assert a_stacks.num_rows > 0 and a_stacks.equals(j_stacks), trace


def test_failed_build_falls_back_to_the_jit(tmp_path):
    """A cache directory that cannot be written: the run warns once and uses the JIT."""
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory should be")
    code = ("from ingest import kernels; from ingest.cpu_streams import merge_order; "
            "print(kernels.load())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "REPLAY_CACHE_DIR": str(blocked)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert "using numba's JIT" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
