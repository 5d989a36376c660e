"""The fleet on a Dask cluster: three real sample traces reported by a two-worker
`distributed.LocalCluster` give the same figures as the local run, the tasks ran on the
workers, and a worker killed mid-run changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from replay.fleet.make import make_fleet_report
from replay.report.options import ReportOptions
from tests.conftest import SAMPLES

distributed = pytest.importorskip("distributed")

TRACES = ("ftrace-thp.dat", "perf-nog.perf.data", "ftrace-tgid.trace.txt.xz")
#: a small sweep keeps the suite fast: 7 replay groups per trace
OPTIONS = ReportOptions(max_orders=(8, 9, 10), searches=("linear",), policies=("migrate",))
#: columns that measure the run, not the model
TIMING = ("elapsed_s",)


def _copy(d: Path) -> list[Path]:
    d.mkdir()
    for name in TRACES:
        if not (SAMPLES / name).exists():
            pytest.skip(f"{SAMPLES / name} is not in this checkout")
        shutil.copy(SAMPLES / name, d / name)
    return [d / name for name in TRACES]


def _report(paths: tuple[Path, ...], where: Path) -> dict:
    """report.json without its time of generation, paths relative to the inputs' dir."""
    text = paths[2].read_text().replace(str(where), "WHERE")
    rep = json.loads(text)

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "generated"}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(rep)


def _sim(dataset: Path, name: str):
    t = pq.read_table(dataset / "sim" / f"{name}.parquet")
    return t.drop_columns([c for c in TIMING if c in t.column_names])


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The fleet report made here, without a scheduler."""
    d = tmp_path_factory.mktemp("fleet")
    traces = _copy(d / "local")
    paths, runs = make_fleet_report(traces, d / "local" / "fleet.html", OPTIONS, quiet=True)
    return {"dir": d / "local", "rep": _report(paths, d / "local"), "runs": runs}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c


def _on_cluster(cluster, d: Path, during=None):
    traces = _copy(d)
    out = {}

    def run():
        out["paths"], out["runs"] = make_fleet_report(
            traces, d / "fleet.html", OPTIONS, scheduler=cluster.scheduler_address,
            quiet=True)

    t = threading.Thread(target=run)
    t.start()
    if during is not None:
        during()
    t.join()
    return _report(out["paths"], d), out["runs"]


def _same_figures(local, rep, runs, d: Path) -> None:
    assert rep == local["rep"]
    for run, mine in zip(local["runs"], runs):
        assert run.error is None and mine.error is None
        for name in ("runs", "requests", "series"):
            assert _sim(mine.dataset, name).equals(_sim(run.dataset, name)), (run.label, name)


def test_cluster_report_equals_local(local, cluster, tmp_path):
    rep, runs = _on_cluster(cluster, tmp_path / "cluster")
    _same_figures(local, rep, runs, tmp_path)
    workers = set(cluster.scheduler.workers)
    for run in runs:
        # plan, replays and write of each trace ran on the cluster's workers, not here
        assert run.workers and run.workers <= workers, run.workers
    assert len(rep["traces"]) == 3 and rep["fleet"]["machines"] == 3
    assert [r["trace"] for r in rep["combined"]["orders"]][:1] == ["ftrace-thp.dat"]


def test_worker_killed_mid_run_is_survived(local, cluster, tmp_path):
    """A worker dies while replays run; Dask reruns its tasks, the figures do not move."""
    killed = {}
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:

        def kill_one() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed:
                for addr, keys in client.processing().items():
                    if any(str(k).startswith("group_task") for k in keys):
                        pid = client.run(os.getpid, workers=[addr])[addr]
                        os.kill(pid, signal.SIGKILL)
                        killed["worker"] = addr
                        return
                time.sleep(0.02)

        rep, runs = _on_cluster(cluster, tmp_path / "killed", during=kill_one)
    assert killed, "no replay task was seen running"
    _same_figures(local, rep, runs, tmp_path)


def test_failed_input_is_listed_others_complete(local, tmp_path, cli):
    """One bad input: a one-line error naming it, exit 1, the report still written and
    listing it; the good one (already swept) reused."""
    good = local["dir"] / "perf-nog.perf.data.replay"
    bad = tmp_path / "broken.dat"
    bad.write_bytes(b"not a trace at all\n")
    html = tmp_path / "f.html"
    r = cli("report", good, bad, "-o", html, "--max-order", "8..10", "--search", "linear",
            "--policy", "migrate", "-q")
    assert r.returncode == 1
    lines = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "broken.dat" in lines[0] and "Traceback" not in r.stderr
    rep = json.loads(html.with_suffix(".json").read_text())
    assert [t["status"] for t in rep["traces"]] == ["ok", "failed"]
    assert rep["fleet"]["failed"] == ["broken.dat"] and "broken.dat" in rep["fleet"]["headline"]
    assert rep["per_trace"]["perf-nog.perf.data.replay"]["demand"] == \
        local["rep"]["per_trace"]["perf-nog.perf.data"]["demand"]


def test_cli_ingest_and_simulate_on_the_cluster(local, cluster, tmp_path, cli):
    """`replay ingest A B --scheduler` then `replay simulate A.replay --scheduler`: the
    same events and the same sweep as the local run."""
    traces = _copy(tmp_path / "cli")[:2]
    addr = cluster.scheduler_address
    r = cli("ingest", *traces, "--scheduler", addr, "-q")
    assert r.returncode == 0, r.stderr
    wrote = [x for x in r.stderr.splitlines() if x.startswith("wrote ")]
    assert len(wrote) == 2
    for t in traces:
        mine = pq.read_table(f"{t}.replay/events.parquet")
        theirs = pq.read_table(local["dir"] / f"{t.name}.replay" / "events.parquet")
        assert mine.equals(theirs), t.name
    ds = Path(f"{traces[0]}.replay")
    r = cli("simulate", ds, "--scheduler", addr, "--max-order", "8..10", "--search",
            "linear", "--policy", "migrate", "-q")
    assert r.returncode == 0, r.stderr
    for name in ("runs", "requests"):
        assert _sim(ds, name).equals(_sim(local["dir"] / f"{traces[0].name}.replay", name))


def test_one_trace_report_on_the_cluster(local, cluster, tmp_path, cli):
    """`replay report TRACE --scheduler`: the single-trace report, equal to that trace's
    section of the local fleet report."""
    trace = _copy(tmp_path / "one")[1]
    html = tmp_path / "one" / "r.html"
    r = cli("report", trace, "-o", html, "--scheduler", cluster.scheduler_address,
            "--max-order", "8..10", "--search", "linear", "--policy", "migrate", "-q")
    assert r.returncode == 0, r.stderr
    mine = _report((html, html, html.with_suffix(".json")), tmp_path / "one")
    assert mine == local["rep"]["per_trace"][trace.name]


def test_serve_hands_its_sweeps_to_the_scheduler(local, cluster, tmp_path):
    """`replay serve --scheduler`: an upload's sweep runs as tasks on the cluster, and its
    report holds the local run's figures."""
    from replay.serve.app import create_app
    from replay.serve.config import ServeConfig
    from tests.serve_helpers import TestClient, wait_for_job

    name = "perf-nog.perf.data"
    config = ServeConfig(tmp_path, token="t0ken", report=OPTIONS,
                         scheduler=cluster.scheduler_address)
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client, \
            distributed.get_task_stream(client) as stream, \
            TestClient(create_app(config)) as http:
        http.headers["Authorization"] = "Bearer t0ken"
        with open(SAMPLES / name, "rb") as f:
            r = http.post("/api/traces", files={"trace": (name, f)})
        assert r.status_code == 202, r.text
        answer = r.json()
        final = wait_for_job(lambda j: http.get(f"/api/jobs/{j}").json(), answer["job"])[-1]
        assert final["state"] == "done", final
        rep = http.get(f"/api/datasets/{answer['dataset']}/report.json").json()
    assert any(str(t["key"]).startswith("group_task") for t in stream.data)
    theirs = local["rep"]["per_trace"][name]
    for key in ("demand", "candidate_rows", "configs", "buddy", "recommendation"):
        assert rep[key] == theirs[key], key
