"""The report's side process (`replay.report.side_process`) on a real sample's dataset:
it computes what this process would, says what went wrong in one line, and ends when
its parent is done with it, used or not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ingest.errors import ReplayError
from replay.database import open_datasets
from replay.dataset import read_meta
from replay.ingestion import ingest
from replay.report import side_process as side_process_module
from replay.report.options import report_options
from replay.report.plots import PLOTS, TRACE_PLOTS
from replay.report.provenance import duration_s
from replay.report.side_process import SideProcess, side_process
from replay.report.trace_figures import trace_figures
from tests.conftest import ROOT, SAMPLES
from tests.report_fixture import fixture_report

TRACE = SAMPLES / "ftrace-thp.dat"
OPTIONS = report_options("3..10", "linear,coalesced,bitmap", "free,reclaim,migrate",
                         "migrate", 0.99, None, False)
#: Seconds after which a side process that did not end counts as hung (not a speed limit).
HUNG_S = 120


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    if not TRACE.exists():
        pytest.skip(f"{TRACE} is not in this checkout")
    return ingest(TRACE, tmp_path_factory.mktemp("side") / "thp.replay", quiet=True)


@pytest.fixture(autouse=True)
def forking(monkeypatch):
    """Fork as `replay report` does: earlier tests' threads (a cluster's) are harmless to
    a child that runs only the side process's own code."""
    monkeypatch.setattr(side_process_module, "may_fork", lambda: True)


def test_trace_figures_and_plots_are_this_processs(dataset):
    with open_datasets([dataset]) as db:
        here = trace_figures(db, OPTIONS, duration_s(read_meta(dataset)))
    rep = fixture_report()
    with side_process() as side:
        assert isinstance(side, SideProcess)
        side.begin_trace_figures(dataset, OPTIONS)
        there = side.trace_figures()
        plots = side.plots(rep)
    assert here.demand["orders"] and there.demand == here.demand
    assert there.request_classes == here.request_classes
    assert there.has_stacks == here.has_stacks
    assert there.requests.num_rows and there.requests.equals(here.requests)
    # every plot: the trace's drawn from the dataset before the report, the rest from it
    assert set(plots) == set(PLOTS)
    assert "order_histogram" in TRACE_PLOTS and plots["order_histogram"].startswith("<svg")


def test_an_error_in_the_side_process_is_one_line(dataset, tmp_path):
    broken = tmp_path / "broken.replay"
    broken.mkdir()
    for f in dataset.iterdir():
        if f.is_file():
            (broken / f.name).write_bytes(f.read_bytes())
    events = broken / "events.parquet"
    events.write_bytes(events.read_bytes()[:1000])
    with side_process() as side:
        side.begin_trace_figures(broken, OPTIONS)
        with pytest.raises(ReplayError) as e:
            side.trace_figures()
    assert "\n" not in str(e.value) and "events.parquet" in str(e.value)


@pytest.mark.parametrize("work", ["", "side.begin_trace_figures(Path(sys.argv[1]), OPTIONS)"])
def test_the_side_process_ends_with_its_parent_unused_or_not_asked_back(dataset, work):
    code = ("import sys; from pathlib import Path\n"
            "from replay.report.side_process import side_process\n"
            "from tests.test_side_process import OPTIONS\n"
            f"with side_process() as side:\n    {work or 'pass'}\n"
            "print('done')\n")
    r = subprocess.run([sys.executable, "-c", code, str(dataset)], cwd=ROOT,
                       capture_output=True, text=True, timeout=HUNG_S, check=False)
    assert r.returncode == 0 and r.stdout == "done\n", r.stderr
    assert r.stderr == ""


def test_the_series_plots_drawn_ahead_are_those_of_the_report(dataset):
    from replay.report.plots import SERIES_PLOTS, render_all
    from replay.report.sweep import ensure_sweep, fragmentation

    ensure_sweep(dataset, OPTIONS, quiet=True)
    with open_datasets([dataset]) as db:
        frag = fragmentation(db, OPTIONS)
    assert frag["series"], "the sample's sweep has no observed series"
    here = render_all({"fragmentation": frag}, SERIES_PLOTS)
    rep = fixture_report()  # other series: a plot drawn from it would differ
    with side_process() as side:
        side.begin_series_plots(dataset, OPTIONS)
        plots = side.plots(rep)
    assert set(plots) == set(PLOTS)
    for key in SERIES_PLOTS:
        assert plots[key] == here[key]
    assert plots["fragindex_over_time"] != render_all(rep, SERIES_PLOTS)["fragindex_over_time"]
