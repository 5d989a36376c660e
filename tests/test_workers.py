"""Imports beside a wait (`replay.workers.importing_beside`): done in a thread, joined at
the end, and used by the sweep so that its tables find pandas imported."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from replay.workers import importing_beside
from tests.conftest import ROOT, SAMPLES

#: Seconds after which the child counts as hung (not a speed limit).
HUNG_S = 600


def test_importing_beside_imports_in_a_thread_joined_when_the_with_ends(tmp_path,
                                                                        monkeypatch):
    name = "replay_probe_module"
    (tmp_path / f"{name}.py").write_text("import threading\n"
                                         "IMPORTED_BY = threading.current_thread().name\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    before = threading.active_count()
    with importing_beside([name, "replay_no_such_module"]):  # a missing one is skipped
        pass
    assert sys.modules[name].IMPORTED_BY == "replay-imports"
    assert threading.active_count() == before  # joined: a later fork is safe


def test_the_sweep_imports_its_tables_imports_while_its_workers_replay(tmp_path):
    trace = SAMPLES / "ftrace-thp.dat"
    if not trace.exists():
        pytest.skip(f"{trace} is not in this checkout")
    code = f"""
import sys, threading
from pathlib import Path
from replay.ingestion import ingest
import replay.engine.simulate as simulate
from replay.engine.options import SimOptions

ds = ingest(Path({str(trace)!r}), Path({str(tmp_path / "d")!r}), quiet=True)
assert "pandas" not in sys.modules, "imported before the sweep"
seen = []
tables = simulate.output_tables
def output_tables(*args):
    seen.append("pandas" in sys.modules)
    return tables(*args)
simulate.output_tables = output_tables
simulate.run_sweep(ds, SimOptions(max_orders=(4, 9), jobs=2), quiet=True)
print(seen, threading.active_count())
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                       text=True, timeout=HUNG_S, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["[True]", "1"]
