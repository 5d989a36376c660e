"""`replay serve` through httpx against the ASGI app: uploads, jobs, reads, SQL, the
named queries, compare, the pages, its security and its faults, on real sample traces."""

from __future__ import annotations

import json
import lzma
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.serve_helpers import TestClient

from replay.database import Limits
from replay.ingestion import ingest
from replay.queries import named_queries
from replay.report.make import make_report
from replay.serve.app import create_app
from replay.serve.config import ServeConfig, ServeError, check_bind
from tests.conftest import SAMPLES, run_cli
from tests.serve_helpers import leftovers, SMALL_SWEEP, cli_error, wait_for_job

THP = SAMPLES / "ftrace-thp.dat"
#: events in ftrace-thp (sample_traces/README.md: `stats.awk` over the text export)
THP_EVENTS = 23864
TGID = SAMPLES / "ftrace-tgid.trace.txt.xz"
TGID_EVENTS = 10338
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A service over a directory already holding one dataset (ftrace-tgid, reported),
    into which ftrace-thp.dat was uploaded and its job followed to the end."""
    data = tmp_path_factory.mktemp("serve")
    found = data / "tgid"
    ingest(TGID, found, quiet=True)
    make_report(found, None, SMALL_SWEEP, quiet=True)
    config = ServeConfig(data, token=TOKEN, jobs=2, max_upload=8 << 20,
                         sql_limits=Limits(10.0, 100), report=SMALL_SWEEP)
    with TestClient(create_app(config)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        with open(THP, "rb") as f:
            r = client.post("/api/traces", files={"trace": ("ftrace-thp.dat", f)})
        assert r.status_code == 202, r.text
        answer = r.json()
        states = wait_for_job(lambda j: client.get(f"/api/jobs/{j}").json(), answer["job"])
        yield client, data, answer, states


def job_of(client, job):
    return wait_for_job(lambda j: client.get(f"/api/jobs/{j}").json(), job)[-1]


def upload(client, path: Path, name: str | None = None):
    with open(path, "rb") as f:
        return client.post("/api/traces", files={"trace": (name or path.name, f)})


def test_upload_runs_a_job_to_a_dataset_with_a_report(served):
    client, data, answer, states = served
    final = states[-1]
    assert final["state"] == "done" and final["error"] is None, final
    assert final["dataset"] == answer["dataset"] and final["progress"] == 1.0
    progress = [s["progress"] for s in states]
    assert progress == sorted(progress)  # never goes back
    assert {s["state"] for s in states} <= {"queued", "running", "done"}
    meta = client.get(f"/api/datasets/{answer['dataset']}").json()
    assert meta["events"] == THP_EVENTS and meta["format"] == "trace.dat"
    report = client.get(f"/api/datasets/{answer['dataset']}/report.json").json()
    assert report["options"]["max_orders"] == [8, 9, 10]
    html = client.get(f"/datasets/{answer['dataset']}/report")
    assert html.status_code == 200 and html.text.lstrip().lower().startswith("<!doctype")
    # nothing of the job is left besides the dataset
    assert leftovers(data) == []


def test_progress_listener_follows_the_ingest(tmp_path):
    """The library's hook the jobs' progress comes from: every bar's moves, even quiet."""
    from replay.progress import progress_listener

    seen = []
    with progress_listener(lambda d, done, total: seen.append((d, done, total))):
        ingest(THP, tmp_path / "thp", quiet=True)
    assert seen[0] == ("ingest ftrace-thp.dat", 0, THP.stat().st_size)
    done = [n for _, n, _ in seen]
    # to the end (the trace.dat reader's last position is past it, by 76 bytes here; the
    # job's worker caps each phase's share at 1)
    assert done == sorted(done) and done[-1] >= THP.stat().st_size
    with progress_listener(seen.append):
        pass
    ingest(THP, tmp_path / "again", quiet=True)  # outside the block: not told
    assert len(done) == len(seen)


def test_job_progress_as_server_sent_events(served):
    client, _, answer, _ = served
    with client.stream("GET", f"/api/jobs/{answer['job']}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[len("data: "):]) for line in r.iter_lines()
                  if line.startswith("data: ")]
    assert events[-1]["state"] == "done" and events[-1]["id"] == answer["job"]
    assert client.get("/api/jobs/0123456789abcdef").status_code == 404
    assert client.get("/api/jobs/../../etc").status_code == 404


def test_datasets_listed_with_provenance_including_those_found_in_dir(served):
    client, _, answer, _ = served
    listing = {d["id"]: d for d in client.get("/api/datasets").json()}
    assert set(listing) == {"tgid", answer["dataset"]}
    thp, tgid = listing[answer["dataset"]], listing["tgid"]
    assert (thp["format"], thp["events"], thp["report"]) == ("trace.dat", THP_EVENTS, True)
    assert (tgid["format"], tgid["events"]) == ("ftrace", TGID_EVENTS)
    assert tgid["origin"] == "found in the data directory"
    assert thp["kernel"] == "6.18.44-fc-v782"  # sample_traces/README.md
    assert tgid["kernel"] is None  # kernel text does not say
    assert 0 < thp["duration_s"] < 10


def test_catalogue_survives_a_restart(served, tmp_path):
    client, data, answer, _ = served
    copy = tmp_path / "copy"
    shutil.copytree(data, copy, ignore=shutil.ignore_patterns(".catalogue.sqlite-*", ".lock"))
    # the WAL holds recent writes: copy the catalogue through SQLite's backup
    import sqlite3
    src = sqlite3.connect(data / ".catalogue.sqlite")
    dst = sqlite3.connect(copy / ".catalogue.sqlite")
    src.backup(dst)
    src.close(), dst.close()
    app = create_app(ServeConfig(copy, report=SMALL_SWEEP))
    with TestClient(app, base_url="http://127.0.0.1:8421") as again:
        job = again.get(f"/api/jobs/{answer['job']}").json()
        assert job["state"] == "done"
        origins = {d["id"]: d["origin"] for d in again.get("/api/datasets").json()}
        assert origins[answer["dataset"]] == "upload of ftrace-thp.dat"


def test_one_server_per_data_directory(served, tmp_path):
    with pytest.raises(ServeError, match="another replay serve uses this data directory"):
        create_app(ServeConfig(served[1], report=SMALL_SWEEP))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ServeError, match="cannot use as the data directory"):
        create_app(ServeConfig(blocker / "data", report=SMALL_SWEEP))


def test_sql_answers_as_duckdb_does_on_the_parquet(served):
    client, data, answer, _ = served
    ds = answer["dataset"]
    r = client.post(f"/api/datasets/{ds}/sql",
                    json={"sql": "SELECT event, count(*) AS n FROM events GROUP BY ALL "
                                 "ORDER BY n DESC, event"})
    assert r.status_code == 200, r.text
    got = r.json()
    want = duckdb.sql(f"SELECT event, count(*) AS n FROM '{data / ds / 'events.parquet'}' "
                      "GROUP BY ALL ORDER BY n DESC, event").fetchall()
    assert got["columns"] == ["event", "n"] and got["rows"] == [list(w) for w in want]
    assert sum(n for _, n in got["rows"]) == THP_EVENTS
    # the views of `replay sql`, the sweep's included
    for view in ("allocs", "stacks", "datasets", "runs", "requests", "series"):
        r = client.post(f"/api/datasets/{ds}/sql", json={"sql": f"SELECT * FROM {view}"})
        assert r.status_code == 200, (view, r.text)


def test_sql_row_and_time_limits(served):
    client, _, answer, _ = served
    url = f"/api/datasets/{answer['dataset']}/sql"
    r = client.post(url, json={"sql": "SELECT seq FROM events ORDER BY seq"}).json()
    assert r["truncated"] and [row[0] for row in r["rows"]] == list(range(100))
    datasets = client.app.state.service.datasets
    limits, datasets.limits = datasets.limits, Limits(0.5, 100)  # no need to wait 10 s
    try:
        r = client.post(url, json={"sql": "SELECT count(*) FROM range(1000000000000) a, "
                                          "range(1000) b WHERE a.range * b.range = -1"})
    finally:
        datasets.limits = limits
    assert r.status_code == 400 and "time limit of 0.5 s" in r.json()["error"]


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_blob('../.catalogue.sqlite')",
    "SELECT * FROM glob('/*')",
    "COPY (SELECT 1) TO '/tmp/replay-serve-copy.csv'",
    "ATTACH '/tmp/replay-serve.db' AS x",
    "INSTALL httpfs",
    "LOAD httpfs",
    "CREATE TABLE t AS SELECT 1",
    "SET enable_external_access = true",
    "SELECT 1; SELECT 2",
])
def test_sql_refuses_writes_and_files_outside_the_dataset(served, sql):
    client, data, answer, _ = served
    r = client.post(f"/api/datasets/{answer['dataset']}/sql", json={"sql": sql})
    assert r.status_code == 400, r.text
    message = r.json()["error"]
    assert message and "\n" not in message
    assert not Path("/tmp/replay-serve-copy.csv").exists()


def test_sql_error_carries_duckdbs_hint(served):
    client, _, answer, _ = served
    r = client.post(f"/api/datasets/{answer['dataset']}/sql",
                    json={"sql": "SELECT * FROM evnts"})
    assert r.status_code == 400
    assert "evnts" in r.json()["error"] and '"events"' in r.json()["hint"]
    r = client.post(f"/api/datasets/{answer['dataset']}/sql", json={"sql": "SELEC 1"})
    assert "^" in r.json()["hint"]  # the caret under the error's position


def test_named_queries_listed_and_run(served):
    client, data, answer, _ = served
    listed = {q["name"]: q for q in client.get("/api/queries").json()}
    assert set(listed) == set(named_queries())
    name = next(n for n, q in listed.items() if q["params"])
    assert listed[name]["description"] == named_queries()[name].description
    ds = answer["dataset"]
    r = client.post(f"/api/datasets/{ds}/query/{name}", json={"params": {}})
    assert r.status_code == 200, r.text
    cli = run_cli("query", name, str(data / ds), "--format", "json")
    assert cli.returncode == 0, cli.stderr
    want = json.loads(cli.stdout)
    assert len(r.json()["rows"]) == min(len(want), 100)
    r = client.post(f"/api/datasets/{ds}/query/{name}", json={"params": {"nope": "1"}})
    assert r.status_code == 400 and "no parameter 'nope'" in r.json()["error"]
    assert client.post(f"/api/datasets/{ds}/query/no_such", json={}).status_code == 400


def test_compare_two_datasets(served):
    client, data, answer, _ = served
    r = client.get(f"/api/compare?a={answer['dataset']}&b=tgid")
    assert r.status_code == 200, r.text
    both = r.json()
    for key, ds in (("a", answer["dataset"]), ("b", "tgid")):
        report = json.loads((data / ds / "report.json").read_text())
        assert both[key]["dataset"] == ds
        assert both[key]["demand"] == report["demand"]
        assert both[key]["max_order"] == report["recommendation"]["max_order"]
    page = client.get(f"/compare?a={answer['dataset']}&b=tgid")
    assert page.status_code == 200 and "recommended max order" in page.text
    assert client.get("/api/compare?a=tgid&b=nope").status_code == 404


def test_pages_render_without_network_assets(served):
    client, _, answer, _ = served
    for url in ("/", f"/datasets/{answer['dataset']}", "/compare"):
        r = client.get(url)
        assert r.status_code == 200, url
        assert "http://" not in r.text and "https://" not in r.text, url
    page = client.get("/").text
    assert answer["dataset"] in page and 'id="upload"' in page and "tgid" in page
    ds_page = client.get(f"/datasets/{answer['dataset']}").text
    assert 'id="sql"' in ds_page and f"/datasets/{answer['dataset']}/report" in ds_page
    assert all(f'data-query="{n}"' in ds_page for n in named_queries())
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/datasets/nope").status_code == 404


@pytest.mark.parametrize("dataset", ["..", ".catalogue.sqlite", ".uploads", "a b",
                                     "%2e%2e%2fetc", "tgid%2f..%2f..", "x" * 200])
def test_dataset_ids_checked_before_paths(served, dataset):
    client = served[0]
    for url in (f"/api/datasets/{dataset}", f"/api/datasets/{dataset}/report.json",
                f"/datasets/{dataset}/report"):
        assert client.get(url).status_code == 404, url
    r = client.post(f"/api/datasets/{dataset}/sql", json={"sql": "SELECT 1"})
    assert r.status_code == 404


def test_writes_need_the_token(served):
    client, data, _, _ = served
    bare = {"Authorization": ""}
    for headers in (bare, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        r = client.post("/api/traces", files={"trace": ("x.dat", b"x")}, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert client.delete("/api/datasets/tgid", headers=headers).status_code == 401
    assert (data / "tgid").is_dir()
    # reads need none
    assert client.get("/api/datasets", headers=bare).status_code == 200


def test_writes_from_another_sites_page_refused(served):
    client, data, _, _ = served
    evil = {"Origin": "http://evil.example"}
    r = client.post("/api/traces", files={"trace": ("x.dat", b"x")}, headers=evil)
    assert r.status_code == 403
    assert client.delete("/api/datasets/tgid", headers=evil).status_code == 403
    assert (data / "tgid").is_dir()


def test_without_token_only_loopback_hosts_answered(tmp_path):
    app = create_app(ServeConfig(tmp_path, report=SMALL_SWEEP))
    with TestClient(app, base_url="http://127.0.0.1:8421") as client:
        assert client.get("/api/datasets").status_code == 200
        for host in ("localhost:8421", "[::1]:8421", "127.0.0.1"):
            assert client.get("/", headers={"Host": host}).status_code == 200, host
        # a name rebound to 127.0.0.1 by another site
        for host in ("evil.example:8421", "evil.example", "[2001:db8::1]:80"):
            assert client.get("/api/datasets", headers={"Host": host}).status_code == 421
        # writes need no token here (loopback only)
        r = client.post("/api/traces", files={"trace": ("empty.dat", b"")})
        assert r.status_code == 202


def test_no_token_binds_loopback_only():
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", "t")
    for host in ("0.0.0.0", "192.168.1.2", "::", "example.org"):
        with pytest.raises(ServeError, match="without a token"):
            check_bind(host, None)


def test_cli_refuses_public_host_without_token(tmp_path):
    r = run_cli("serve", "--host", "0.0.0.0", "--data", str(tmp_path / "d"))
    assert r.returncode == 1
    line, = r.stderr.strip().splitlines()
    assert "refusing to listen on 0.0.0.0 without a token" in line


def _garbage(tmp: Path) -> dict[str, Path]:
    png = tmp / "shot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + bytes(range(256)) * 4)
    cut = tmp / "cut.dat"
    cut.write_bytes(THP.read_bytes()[:200_000])
    empty = tmp / "empty.dat"
    empty.write_bytes(b"")
    return {"png": png, "truncated": cut, "empty": empty}


@pytest.mark.parametrize("kind", ["png", "truncated", "empty"])
def test_garbage_upload_fails_with_the_readers_one_line_error(served, tmp_path, kind):
    client, data, _, _ = served
    before = sorted(p.name for p in data.iterdir())
    listed = client.get("/api/datasets").json()
    path = _garbage(tmp_path)[kind]
    r = upload(client, path)
    assert r.status_code == 202
    job = job_of(client, r.json()["job"])
    assert job["state"] == "failed"
    assert job["error"] == cli_error(path)
    assert client.get("/api/datasets").json() == listed
    assert sorted(p.name for p in data.iterdir()) == before
    assert leftovers(data) == []
    assert client.get(f"/api/datasets/{r.json()['dataset']}").status_code == 404


def test_compressed_text_upload(served):
    """A compressed kernel text trace is an upload like any other."""
    client, data, _, _ = served
    r = upload(client, TGID, "tgid-again.trace.txt.xz")
    job = job_of(client, r.json()["job"])
    assert job["state"] == "done", job
    meta = client.get(f"/api/datasets/{job['dataset']}").json()
    assert meta["events"] == TGID_EVENTS and meta["format"] == "ftrace"
    assert client.delete(f"/api/datasets/{job['dataset']}").status_code == 200
    assert not (data / job["dataset"]).exists()
    assert job["dataset"] not in {d["id"] for d in client.get("/api/datasets").json()}


def test_upload_over_the_size_limit_refused(served, tmp_path):
    client, data, _, _ = served
    big = tmp_path / "big.txt"
    with lzma.open(TGID) as f:
        text = f.read()
    big.write_bytes(text * (1 + (9 << 20) // len(text)))
    jobs = client.get("/api/jobs").json()
    r = upload(client, big)
    assert r.status_code == 413 and "limit of 8388608 bytes" in r.json()["error"]
    assert client.get("/api/jobs").json() == jobs
    assert not any((data / ".uploads").iterdir())
    # no Content-Length (chunked): the limit holds while streaming
    boundary = "b0undary"

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"trace\"; "
               f"filename=\"big.txt\"\r\n\r\n").encode()
        for _ in range(10):
            yield text[: 1 << 20].ljust(1 << 20)
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post("/api/traces", content=body(),
                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413
    assert client.get("/api/jobs").json() == jobs
    assert not any((data / ".uploads").iterdir())


def test_upload_without_the_trace_field(served):
    client = served[0]
    r = client.post("/api/traces", files={"file": ("x.dat", b"abc")})
    assert r.status_code == 400 and "no 'trace' field" in r.json()["error"]
    r = client.post("/api/traces", content=b"abc", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
