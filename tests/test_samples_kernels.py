"""The samples captured on other kernels under qemu (sample_traces/qemu): each ingests,
and what the dataset says agrees with oracles that share nothing with the readers.

Oracles: `sample_traces/stats.awk` run by awk on the same text (events per type, order
histogram of mm_page_alloc/mm_page_free); the ring buffer's own per-CPU `entries:`
counts, read by the guest after `tracing_on=0` (`end-ring-buffer-stats.txt`); the
release `uname -r` printed in the guest (`uname-r.txt`); and for the max-order kernels,
the order they were built with (docs/ground_truth.md).
"""

from __future__ import annotations

import json
import lzma
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from replay.ingestion import ingest
from tests.conftest import SAMPLES, rows

# name -> the max order the kernel was built with (Debian's kernels: the default, 10)
KERNEL_SAMPLES = {
    "debian-6.1": 10,
    "debian-6.1-4g": 10,
    "debian-5.10": 10,
    "maxorder5-6.12": 5,
    "maxorder10-6.12": 10,
}
NAMES = sorted(KERNEL_SAMPLES)
RELEASES = {"debian-6.1": "6.1.", "debian-6.1-4g": "6.1.", "debian-5.10": "5.10.",
            "maxorder5-6.12": "6.12.", "maxorder10-6.12": "6.12."}
HUGETLB_PAGE_ORDER = 9  # x86-64: 2 MiB pages of 4 KiB
PAGE_EVENTS = ("mm_page_alloc", "mm_page_free", "mm_page_free_batched",
               "mm_page_alloc_zone_locked", "mm_page_pcpu_drain", "mm_page_alloc_extfrag")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    """Each sample ingested once for the module."""
    out = tmp_path_factory.mktemp("kernels")
    return {name: ingest(SAMPLES / f"{name}.trace.txt.xz", out / name, quiet=True)
            for name in NAMES}


def awk_stats(name: str) -> dict[str, int]:
    """`awk -f stats.awk` over the decompressed trace: {"mm_page_alloc": n, ...,
    "mm_page_alloc order=9": n, ..., "total": n}."""
    if shutil.which("awk") is None:
        pytest.skip("no awk on this machine: the oracle is sample_traces/stats.awk")
    with lzma.open(SAMPLES / f"{name}.trace.txt.xz", "rb") as f:
        text = f.read()
    done = subprocess.run(["awk", "-f", str(SAMPLES / "stats.awk")], input=text,
                          capture_output=True, check=True)
    stats = {}
    for line in done.stdout.decode().splitlines():
        key, _, count = line.rpartition(" ")
        stats[key.strip()] = int(count)
    return stats


def meta(dataset: Path) -> dict:
    return json.loads((dataset / "meta.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_events_per_type_match_awk(datasets, name):
    stats = awk_stats(name)
    got = dict(rows(datasets[name], "SELECT event, count(*) FROM events GROUP BY event"))
    expected = {e: stats[e] for e in PAGE_EVENTS if e in stats}
    assert got == expected
    assert sum(got.values()) == stats["total"] == meta(datasets[name])["events"]
    # every kind of event the guest enabled occurred (the workload is built for it)
    assert set(got) == set(PAGE_EVENTS)


@pytest.mark.parametrize("name", NAMES)
def test_order_histogram_matches_awk(datasets, name):
    stats = awk_stats(name)
    got = {f"{event} order={order}": n for event, order, n in rows(
        datasets[name], "SELECT event, \"order\", count(*) FROM events "
        "WHERE event IN ('mm_page_alloc', 'mm_page_free') GROUP BY ALL")}
    expected = {k: v for k, v in stats.items() if " order=" in k}
    assert got == expected


@pytest.mark.parametrize("name", NAMES)
def test_nothing_lost_per_ring_buffer(datasets, name):
    """The per-CPU ring buffers held exactly the events the dataset has, none overrun."""
    stats = (SAMPLES / f"{name}.snapshots" / "end-ring-buffer-stats.txt").read_text()
    entries = [int(n) for n in re.findall(r"^entries: (\d+)$", stats, re.M)]
    overruns = [int(n) for n in re.findall(r"^overrun: (\d+)$", stats, re.M)]
    assert len(entries) == len(overruns) == 2 and overruns == [0, 0]
    m = meta(datasets[name])
    # the max-order kernels also traced mm_alloc_contig_migrate_range_info (skipped)
    assert sum(entries) == m["events"] + m["skipped"]["total"]
    assert m["lost_events"]["total"] == 0 and m["malformed"]["total"] == 0
    if not m["skipped"]["total"]:
        per_cpu = dict(rows(datasets[name], "SELECT cpu, count(*) FROM events GROUP BY cpu"))
        assert per_cpu == dict(enumerate(entries))


@pytest.mark.parametrize("name", NAMES)
def test_kernel_release(datasets, name):
    """uname -r from the guest names the kernel the sample claims; the dataset, when the
    trace carries a release (kernel text does not), says the same."""
    release = (SAMPLES / f"{name}.snapshots" / "uname-r.txt").read_text().strip()
    assert release.startswith(RELEASES[name])
    assert meta(datasets[name])["kernel_release"] in (None, release)


@pytest.mark.parametrize("name", NAMES)
def test_orders_within_the_kernels_max_order(datasets, name):
    """No allocation above the max order the kernel was built with (__alloc_pages returns
    NULL before its tracepoint for those). Order-9 hugetlb pages are allocated by the buddy
    allocator at max order >= 9; below it they are "gigantic" and come from
    alloc_contig_range, which has no mm_page_alloc event, but their release is one
    mm_page_free of order 9 each: a free above the max order (docs/ground_truth.md)."""
    max_order = KERNEL_SAMPLES[name]
    top, = rows(datasets[name], "SELECT max(\"order\") FROM events "
                "WHERE event = 'mm_page_alloc'")[0]
    assert top <= max_order
    allocs9, frees9, frees_above = rows(datasets[name], f"""
        SELECT count(*) FILTER (event = 'mm_page_alloc' AND "order" = {HUGETLB_PAGE_ORDER}),
               count(*) FILTER (event = 'mm_page_free' AND "order" = {HUGETLB_PAGE_ORDER}),
               count(*) FILTER (event = 'mm_page_free' AND "order" > {max_order})
        FROM events""")[0]
    assert frees9 > 0
    if max_order >= HUGETLB_PAGE_ORDER:
        assert allocs9 > 0 and frees_above == 0
    else:
        assert allocs9 == 0 and frees_above == frees9


def test_gigantic_hugetlb_ranges():
    """At max order 5 every hugetlb page is one alloc_contig_range of 512 aligned pages
    (its mm_alloc_contig_migrate_range_info line), and the page later freed at order 9
    starts at one of those ranges."""
    text = lzma.open(SAMPLES / "maxorder5-6.12.trace.txt.xz", "rt").read()
    ranges = [(int(a, 16), int(b, 16)) for a, b in re.findall(
        r"mm_alloc_contig_migrate_range_info: start=(0x[0-9a-f]+) end=(0x[0-9a-f]+)", text)]
    frees = {int(p, 16) for p in re.findall(r"mm_page_free: \S+ pfn=(0x[0-9a-f]+) order=9", text)}
    pages = 1 << HUGETLB_PAGE_ORDER
    assert ranges and all(end - start == pages and start % pages == 0 for start, end in ranges)
    assert frees and frees <= {start for start, _ in ranges}


@pytest.mark.parametrize("name", NAMES)
def test_simulate_with_the_samples_snapshots(cli, datasets, name):
    done = cli("simulate", datasets[name], "--snapshots", SAMPLES / f"{name}.snapshots",
               "--max-order", "9,10", "--search", "linear", "--policy", "free",
               "--mode", "simulated", "-j", "1", "-q")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
