"""Shared by the service's tests: a small report sweep, waiting for jobs, the CLI's own
error message for a file (the oracle of a failed job's error)."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from replay.report.options import ReportOptions
from replay.report.recommend import Bar
from tests.conftest import run_cli

with warnings.catch_warnings():
    # Starlette 1.x asks for the `httpx2` fork; its test client still drives httpx
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient  # noqa: F401 - for the tests

#: A report that only needs to exist: three candidates, one search, one policy.
SMALL_SWEEP = ReportOptions(max_orders=(8, 9, 10), searches=("linear",),
                            policies=("migrate",), bar=Bar(policy="migrate"))
SMALL_SWEEP_ARGS = ("--max-order", "8..10", "--search", "linear", "--policy", "migrate")


def leftovers(data: Path) -> list[str]:
    """What jobs left behind in the data directory: uploads, the ingest's temporary
    dataset directories."""
    return sorted(p.name for p in [*(data / ".uploads").iterdir(), *data.glob(".*.tmp-*")])


def wait_for_job(get, job: str, poll: float = 0.1) -> list[dict]:
    """Poll `get(job)` (a job's JSON) until it is done or failed; every state seen."""
    seen = []
    while True:
        state = get(job)
        if not seen or state != seen[-1]:
            seen.append(state)
        if state["state"] in ("done", "failed"):
            return seen
        time.sleep(poll)


def cli_error(trace: Path) -> str:
    """The one-line error `replay ingest` prints for `trace` (run in its directory, named
    by its file name, as the service's worker names an upload)."""
    out = trace.parent / "cli-oracle.replay"
    r = run_cli("ingest", trace.name, "-o", out.name, "-q", cwd=trace.parent)
    assert r.returncode == 1 and not out.exists()
    line, = r.stderr.strip().splitlines()
    return line.removeprefix("error: ")
