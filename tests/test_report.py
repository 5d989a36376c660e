"""`replay report` end to end on a real sample trace: figures checked against the query
layer and the engine on the same dataset, the page checked self-contained and rendered.
"""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from replay.database import open_datasets
from replay.report.tables import all_tables
from tests.conftest import SAMPLES, run_cli

TRACE = SAMPLES / "ftrace-thp.dat"
SNAPSHOTS = SAMPLES / "ftrace-thp.snapshots"
#: A reduced sweep keeps the test fast; the README's command runs the default 3..10.
ORDERS = (4, 9)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The report of the real sample, made as a user would: from the trace file."""
    if not TRACE.exists():
        pytest.skip(f"{TRACE} is not in this checkout")
    d = tmp_path_factory.mktemp("report")
    trace = d / TRACE.name
    shutil.copy(TRACE, trace)
    html = d / "out" / "report.html"
    html.parent.mkdir()
    r = run_cli("report", trace, "-o", html, "--max-order", ",".join(map(str, ORDERS)), "-q",
                "--snapshots", SNAPSHOTS)
    assert r.returncode == 0, r.stderr
    return {"trace": trace, "dataset": Path(f"{trace}.replay"), "html": html,
            "rep": json.loads(html.with_suffix(".json").read_text()), "stderr": r.stderr}


def _events(dataset: Path, sql: str) -> list[tuple]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW events AS SELECT * FROM '{dataset}/events.parquet'")
    return con.execute(sql).fetchall()


def test_writes_three_files_side_by_side(made):
    for suffix in (".html", ".md", ".json"):
        assert made["html"].with_suffix(suffix).stat().st_size > 1000
    assert made["rep"]["options"]["max_orders"] == list(ORDERS)


def test_demand_matches_events_and_query_layer(made):
    """Requests per order as counted straight from events.parquet, and as the named
    queries give them."""
    ds = made["dataset"]
    direct = dict(_events(ds, "SELECT \"order\", count(*) FROM events WHERE event = "
                          "'mm_page_alloc' GROUP BY 1"))
    got = {r["order"]: r["requests"] for r in made["rep"]["demand"]["orders"]}
    assert got == direct
    with open_datasets([ds]) as db:
        ctx = db.query("alloc_context", {"min_order": "0"}).fetchall()
        high = str(made["rep"]["demand"]["high_order"])
        gfp = db.fetch_query("gfp_flags", {"min_order": high}).drop_columns(["trace"])
        threads = db.fetch_query("per_process", {"min_order": high, "top": "10"})
    assert made["rep"]["demand"]["gfp"] == gfp.to_pylist()[:10]
    assert made["rep"]["demand"]["processes"] == threads.drop_columns(["trace"]).to_pylist()
    assert high == str(min(ORDERS) + 1)
    cols = ["trace", "order", "context", "requests", "pages", "failed"]
    ctx = [dict(zip(cols, r)) for r in ctx]
    for cand in made["rep"]["candidates"]:
        n = cand["max_order"]
        assert cand["requests_above"] == sum(v for o, v in direct.items() if o > n)
        assert cand["atomic_above"] == sum(
            r["requests"] for r in ctx
            if r["order"] > n and r["context"] in ("irq", "atomic", "nowait"))


def test_sweep_figures_are_the_engines(made):
    """Every configuration row is the engine's runs row; its request count is the number
    of requests rows of that configuration, and the number of events above N."""
    ds = made["dataset"]
    runs = {(r["mode"], r["max_order"], r["search"], r["policy"]): r
            for r in pq.read_table(ds / "sim" / "runs.parquet").to_pylist()}
    req = pq.read_table(ds / "sim" / "requests.parquet",
                        columns=["mode", "max_order", "search", "policy"]).to_pylist()
    rep = made["rep"]
    assert len(rep["configs"]) == 2 * len(ORDERS) * 9
    above = {c["max_order"]: c["requests_above"] for c in rep["candidates"]}
    for c in rep["configs"]:
        key = (c["mode"], c["max_order"], c["search"], c["policy"])
        run = runs[key]
        assert c["satisfied_share"] == run["success_share"]
        for col in ("requests", "failed", "false_failures", "cost_p50", "cost_p99",
                    "cost_max", "memarea_migrate"):
            assert c[col] == run[col], col
        assert c["requests"] == sum(1 for r in req if tuple(r.values()) == key)
        assert c["requests"] == above[c["max_order"]]


def test_buddy_steps_saved_against_baseline(made):
    ds = made["dataset"]
    runs = pq.read_table(ds / "sim" / "runs.parquet").to_pylist()
    base = next(r for r in runs if r["search"] == "none")
    rows = [b for b in made["rep"]["buddy"] if not b["baseline"]]
    assert [b["max_order"] for b in rows] == list(ORDERS)
    for b in rows:
        run = next(r for r in runs if (r["mode"], r["max_order"], r["search"], r["policy"])
                   == ("simulated", b["max_order"], "linear", "migrate"))
        assert b["split_steps"] == run["split_steps"]
        assert b["split_steps_saved"] == base["split_steps"] - run["split_steps"]
    # a lower max order never splits more than the traced kernel's
    assert all(b["split_steps_saved"] >= 0 for b in rows)


def test_fidelity_is_the_baselines_and_uses_the_snapshots(made):
    """report.json carries the engine's per-zone fidelity: end free pages and blocks per
    order of the baseline beside the capture's end buddyinfo."""
    fid = made["rep"]["fidelity"]
    runs = pq.read_table(made["dataset"] / "sim" / "runs.parquet").to_pylist()
    base = next(r for r in runs if r["search"] == "none")
    assert fid["agreement_share"] == base["fidelity_agreement_share"]
    buddyinfo = {}
    for line in (SNAPSHOTS / "end-buddyinfo.txt").read_text().splitlines():
        buddyinfo[line.split()[3]] = [int(n) for n in line.split()[4:]]
    assert set(fid["zones"]) == set(buddyinfo)
    for zone, counts in buddyinfo.items():
        z = fid["zones"][zone]
        assert z["end_blocks"]["proc"] == counts
        assert z["end_free_pages"]["proc"] == sum(n << o for o, n in enumerate(counts))
        assert len(z["end_blocks"]["model"]) == len(counts)
    assert sum(z["end_blocks"]["model"][0] for z in fid["zones"].values()) \
        == base["end_blocks"][0]
    assert not any("inferred" in c for c in made["rep"]["caveats"])


def test_cost_distribution_is_the_requests(made):
    """The plotted percentiles are costs of real requests of that configuration."""
    dist = made["rep"]["cost_distribution"]
    assert dist["searches"], "no cost distribution"
    req = pq.read_table(made["dataset"] / "sim" / "requests.parquet").to_pylist()
    for s in dist["searches"]:
        costs = sorted(r["cost"] for r in req
                       if (r["mode"], r["max_order"], r["search"], r["policy"])
                       == (dist["mode"], dist["max_order"], s["search"], dist["policy"]))
        assert s["requests"] == len(costs)
        assert s["cost"][0] == costs[0] and s["cost"][-1] == costs[-1]
        assert s["cost"] == sorted(s["cost"])


def test_recommendation_respects_thp_and_its_bar(made):
    """The sample has THP faults: the answer is N >= 9 or "not enough evidence" (it
    spans 0.37 s), with the THP constraint named and the headline in every output."""
    rec = made["rep"]["recommendation"]
    assert [c["max_order"] for c in rec["candidates"]] == list(ORDERS)
    assert rec["max_order"] is None or rec["max_order"] >= 9
    thp = next(c for c in rec["constraints"] if c["name"] == "THP")
    assert thp["min_order"] == 9
    assert not rec["evidence"]["enough"] and rec["max_order"] is None
    assert rec["reason"].startswith("not enough evidence: the trace spans 0.373 s")
    assert rec["headline"].startswith("Not enough evidence")
    assert "THP: N >= 9" in rec["headline"]
    from html import escape

    for suffix, quote in ((".html", escape), (".md", str)):
        text = made["html"].with_suffix(suffix).read_text()
        assert quote(rec["bar"]["text"]) in text and quote(rec["headline"]) in text
        assert "cost evidence only" in text
    # N = 4 is below the floor whatever memarea does; its hugetlb pages go to memarea
    four = rec["candidates"][0]
    assert "below the constraint floor N >= 9" in four["reasons"]
    hugetlb = next(k for k in four["classes"] if k["name"] == "hugetlb")
    assert hugetlb["contiguous"] == 4 and four["cost"]["requests"] == 4


def test_requester_classes_are_the_named_querys(made):
    with open_datasets([made["dataset"]]) as db:
        rows = db.fetch_query("request_classes", {"min_order": str(min(ORDERS) + 1)})
    per_class: dict[str, int] = {}
    for r in rows.to_pylist():
        per_class[r["class"]] = per_class.get(r["class"], 0) + r["requests"]
    got = {r["class"]: r["requests"] for r in made["rep"]["requester_classes"]}
    assert got == per_class == {"thp": 9, "hugetlb": 4, "pagecache": 2}
    for c in made["rep"]["recommendation"]["candidates"]:
        assert sum(k["requests"] for k in c["classes"]) == sum(per_class.values())


def test_both_readings_of_max_order_printed_once(made):
    for suffix in (".html", ".md"):
        text = made["html"].with_suffix(suffix).read_text()
        assert text.count("In 2001-era (2.4) terms") == 1
        assert "MAX_PAGE_ORDER" in text


def test_markdown_has_every_table(made):
    md = made["html"].with_suffix(".md").read_text()
    for t in all_tables(made["rep"]).values():
        if t.key != "verdicts":
            assert f"## {t.title}" in md
        if t.rows and any(c.header for c in t.columns):
            assert "| " + " | ".join(c.header.replace("|", "\\|") or "·"
                                     for c in t.columns) + " |" in md


class _Resources(HTMLParser):
    """Every attribute naming a resource, and the style text, of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: set[str] = set()
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            if tag == "a" and name == "href":  # a link the reader may follow, not a load
                continue
            if name in ("src", "href", "xlink:href", "srcset", "poster", "data", "action"):
                self.urls.append(value or "")
            if name == "style":
                self.style += value or ""

    def handle_data(self, data):
        if self._in_style:
            self.style += data

    def handle_endtag(self, tag):
        self._in_style = False


def test_html_loads_no_external_resource(made):
    page = made["html"].read_text()
    p = _Resources()
    p.feed(page)
    assert "svg" in p.tags and "table" in p.tags
    assert not p.tags & {"script", "link", "img", "iframe", "object", "embed"}
    external = [u for u in p.urls if not (u.startswith("#") or u.startswith("data:"))]
    assert external == []
    assert "@import" not in p.style
    assert all(u.strip("'\" ").startswith(("data:", "#"))
               for u in re.findall(r"url\(([^)]*)\)", p.style + page))
    assert not re.search(r"""(src|(?<!<a )href)\s*=\s*["']?\s*(https?:|file:|//)""", page,
                         re.I)


def test_refuses_to_overwrite(made):
    before = made["html"].read_bytes()
    r = run_cli("report", made["trace"], "-o", made["html"], "--max-order", "4,9", "-q")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"error: {made['html']}: already exists (use --force to " \
        "replace it)"
    assert made["html"].read_bytes() == before


def test_reuses_a_sweep_of_the_same_options(made):
    from dataclasses import asdict

    from replay.report.options import ReportOptions
    from replay.report.sweep import _effective, ensure_sweep, existing_options, sim_options

    sim = made["dataset"] / "sim" / "runs.parquet"
    before = sim.stat().st_mtime_ns
    same = ReportOptions(max_orders=ORDERS, snapshots=str(SNAPSHOTS.resolve()))
    assert ensure_sweep(made["dataset"], same, quiet=True)
    assert sim.stat().st_mtime_ns == before
    have = _effective(existing_options(made["dataset"]))
    for other in (ReportOptions(max_orders=ORDERS), ReportOptions(
            max_orders=(5,), snapshots=same.snapshots)):
        assert _effective(asdict(sim_options(other))) != have


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium); "
    "the rendering checks need a headless browser")


def _chromium(url: str, tmp: Path, *args: str) -> tuple[str, list[str]]:
    """Run headless chromium on `url`; (stdout, URLs the page itself asked for).

    The browser's own background requests (update checks, time sync) are told apart
    from the page's by the network isolation key: the page's carry its file:// site.
    """
    import subprocess

    netlog = tmp / "net.json"
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp / 'profile'}", f"--log-net-log={netlog}",
         *args, url], capture_output=True, text=True, timeout=300, check=True).stdout
    text = netlog.read_text()
    try:
        log = json.loads(text)
    except ValueError:  # a log cut short at exit lacks its closing brackets
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    asked = [e["params"]["url"] for e in log["events"]
             if e["type"] == start_job and "file://" in
             e["params"].get("network_isolation_key", "") and e["params"]["url"] != url]
    return out, asked


@needs_chromium
def test_chromium_net_log_sees_external_loads(tmp_path):
    """The net-log check below can fail: a page with an external image is caught."""
    page = tmp_path / "external.html"
    page.write_text('<html><body><img src="http://example.invalid/x.png"></body></html>')
    _, asked = _chromium(page.as_uri(), tmp_path, "--dump-dom")
    assert asked == ["http://example.invalid/x.png"]


@needs_chromium
def test_renders_in_headless_chromium(made, tmp_path):
    from matplotlib.image import imread

    url = made["html"].resolve().as_uri()
    shot = tmp_path / "shot.png"
    _, asked = _chromium(url, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000")
    assert asked == []
    pixels = imread(shot)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    assert pixels[..., :3].std() > 0.05, "screenshot is blank"


def test_readme_quick_start_reports_on_a_bundled_sample():
    """The README's first command installs and runs `replay report` on a committed real
    trace; the block holds exactly two commands; the report's picture is there."""
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = block.strip().splitlines()
    assert len(commands) == 2
    first = commands[0].split(" && ")
    assert "pip install" in first[1]
    args = first[2].split()
    assert args[0].endswith("replay") and args[1] == "report"
    assert (ROOT / args[2]).is_file() and args[2].startswith("sample_traces/")
    assert (ROOT / args[args.index("--snapshots") + 1]).is_dir()
    assert "](docs/report.png)" in readme and (ROOT / "docs" / "report.png").stat().st_size
