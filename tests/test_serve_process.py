"""`replay serve` as a process: SQL answered while a job runs, and a server killed
mid-job (kill -9) that restarts with the job failed and nothing partial listed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from replay.ingestion import ingest
from replay.serve.catalogue import INTERRUPTED
from replay.serve.worker import PHASES
from tests.conftest import ROOT, SAMPLES
from tests.serve_helpers import leftovers, wait_for_job

THP = SAMPLES / "ftrace-thp.dat"
TGID = SAMPLES / "ftrace-tgid.trace.txt.xz"
TGID_EVENTS = 10338  # sample_traces/README.md


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(data: Path):
    """`replay serve` on a free port (the full default sweep: jobs take a few seconds);
    yields (process, client)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REPLAY_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-m", "replay", "serve", "--data", str(data),
                             "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        while True:  # until it answers (or died)
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                client.get("/api/datasets")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield proc, client
    finally:
        client.close()
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
        proc.stderr.close()


def upload_and_wait(client: httpx.Client, phase: str, progress: float = 0.0) -> dict:
    """Upload ftrace-thp.dat; return once its job is in `phase`, beyond `progress`."""
    with open(THP, "rb") as f:
        answer = client.post("/api/traces", files={"trace": ("ftrace-thp.dat", f)}).json()
    while True:
        job = client.get(f"/api/jobs/{answer['job']}").json()
        if job["phase"] == phase and job["progress"] > progress:
            return answer
        assert job["state"] in ("queued", "running"), job
        time.sleep(0.01)


def processes_in(directory: Path) -> list[int]:
    """Pids of the processes whose working directory is `directory`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")) == directory:
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_twenty_concurrent_sql_requests_during_a_job(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    ingest(TGID, data / "tgid", quiet=True)
    with server(data) as (proc, client):
        answer = upload_and_wait(client, "ingest")
        sql = {"sql": "SELECT count(*) FROM events"}

        def ask(_: int) -> httpx.Response:
            return client.post("/api/datasets/tgid/sql", json=sql)

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(ask, range(20)))
        assert [a.status_code for a in answers] == [200] * 20
        assert all(a.json()["rows"] == [[TGID_EVENTS]] for a in answers)
        final = wait_for_job(lambda j: client.get(f"/api/jobs/{j}").json(), answer["job"])
        assert final[-1]["state"] == "done", final[-1]


def test_server_killed_mid_job_restarts_with_the_job_failed(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    ingest(TGID, data / "tgid", quiet=True)
    with server(data) as (proc, client):
        # killed in the engine's sweep: the dataset is ingested, its report not written,
        # the worker and the engine's own workers busy
        answer = upload_and_wait(client, "simulate", PHASES["simulate"][0])
        workdir = data / ".uploads" / answer["job"]
        assert processes_in(workdir)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (data / answer["dataset"] / "meta.json").is_file()
    assert not (data / answer["dataset"] / "report.json").exists()
    # the job's worker dies with the server, the engine's workers with it (PR_SET_PDEATHSIG)
    deadline = time.monotonic() + 30
    while processes_in(workdir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes_in(workdir)
    with server(data) as (_, client):
        job = client.get(f"/api/jobs/{answer['job']}").json()
        assert (job["state"], job["error"]) == ("failed", INTERRUPTED)
        assert [d["id"] for d in client.get("/api/datasets").json()] == ["tgid"]
        r = client.get(f"/api/datasets/{answer['dataset']}")
        assert r.status_code == 404
    # what the job had written is gone
    assert sorted(p.name for p in data.iterdir() if not p.name.startswith(".")) == ["tgid"]
    assert leftovers(data) == []
