"""Benchmark: `replay serve` under load, and its upload-to-report time against the CLI.

1. SQL latency: clients send a query over the `allocs` view back to back: one client,
   then 20 concurrent ones with the service idle, then 20 while upload jobs (ingest,
   sweep, report) run one after another; prints p50/p99 latency and throughput of each.
2. Upload to report: the time from the upload's first byte to its job's `done`, against
   `replay report TRACE` (ingest and report in one command) on the same trace with the
   same sweep; prints the medians and the ratio.

    python tests/bench/bench_serve.py [--trace sample_traces/ftrace-thp.dat]
        [--clients 20] [--seconds 10] [--runs 3] [--max-order 3..10]

Everything is written in a temporary directory, deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from timing import ROOT, timed

QUERY = 'SELECT "order", count(*) AS n, avg(lifetime_ns) AS life FROM allocs GROUP BY ALL'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Service:
    """`replay serve` in a subprocess over `data`."""

    def __init__(self, data: Path, max_order: str) -> None:
        port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "replay", "serve", "--data", str(data), "--port",
             str(port), "--max-order", max_order], cwd=ROOT, stderr=subprocess.DEVNULL)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        while True:
            try:
                self.client.get("/api/datasets")
                return
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    sys.exit("replay serve did not start")
                time.sleep(0.05)

    def upload(self, trace: Path) -> tuple[str, float]:
        """Upload `trace`, wait for its job; (state, seconds from upload to the end)."""
        t0 = time.perf_counter()
        with open(trace, "rb") as f:
            job = self.client.post("/api/traces", files={"trace": (trace.name, f)}).json()
        while True:
            state = self.client.get(f"/api/jobs/{job['job']}").json()
            if state["state"] in ("done", "failed"):
                return state["state"], time.perf_counter() - t0
            time.sleep(0.02)

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait()


def sql_load(base_url: str, dataset: str, clients: int, stop: threading.Event
             ) -> tuple[list[float], int]:
    """`clients` threads querying until `stop`; every latency (s) and the errors."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=base_url, timeout=120) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                r = c.post(f"/api/datasets/{dataset}/sql", json={"sql": QUERY})
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    errors[0] += r.status_code != 200

    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    return latencies, errors[0]


def timed_load(label: str, base_url: str, clients: int, seconds: float) -> None:
    """`clients` querying dataset `base` for `seconds`; prints the latencies."""
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    t0 = time.perf_counter()
    latencies, errors = sql_load(base_url, "base", clients, stop)
    elapsed = time.perf_counter() - t0
    print(f"{label:<40} {len(latencies):5d} queries  {errors} errors  "
          f"p50 {percentile(latencies, 50) * 1e3:7.1f} ms  "
          f"p99 {percentile(latencies, 99) * 1e3:7.1f} ms  "
          f"{len(latencies) / elapsed:6.1f} queries/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=ROOT / "sample_traces" / "ftrace-thp.dat")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-order", default="3..10")
    args = ap.parse_args()
    trace = args.trace.resolve()
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        data = work / "data"
        data.mkdir()
        subprocess.run([sys.executable, "-m", "replay", "ingest", str(trace), "-o",
                        str(data / "base"), "-q"], check=True, cwd=ROOT)
        print(f"trace: {trace.name} ({trace.stat().st_size / 1e6:.1f} MB); sweep "
              f"--max-order {args.max_order}, every search and policy; "
              f"{args.clients} SQL clients: {QUERY}")
        service = Service(data, args.max_order)
        try:
            base_url = str(service.client.base_url)
            # 1. SQL latency: one client, then all of them idle and during jobs
            timed_load("SQL, one client, service idle", base_url, 1, args.seconds)
            timed_load(f"SQL, {args.clients} clients, service idle", base_url,
                       args.clients, args.seconds)
            stop = threading.Event()
            outcomes: list[str] = []

            def jobs() -> None:
                while not stop.is_set():
                    outcomes.append(service.upload(trace)[0])

            uploader = threading.Thread(target=jobs)
            uploader.start()
            timed_load(f"SQL, {args.clients} clients, during upload jobs", base_url,
                       args.clients, args.seconds)
            stop.set()
            uploader.join()
            print(f"  ({len(outcomes)} upload jobs ran)")
            if any(o != "done" for o in outcomes):
                sys.exit(f"a job failed: {outcomes}")
            # 2. upload to report, against the CLI: alternated, so that load from
            # elsewhere on the machine falls on both alike
            served, cli = [], []
            for i in range(args.runs):
                served.append(service.upload(trace)[1])
                run = work / f"cli{i}"
                run.mkdir()
                (run / trace.name).symlink_to(trace)
                cli.append(timed([sys.executable, "-m", "replay", "report", "-q",
                                  "--max-order", args.max_order,
                                  str(run / trace.name)]).wall)
        finally:
            service.close()
        s, c = statistics.median(served), statistics.median(cli)
        print(f"upload to report (median of {args.runs}, alternated): serve {s:.2f} s, "
              f"replay report {c:.2f} s, ratio {s / c:.2f}")
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
