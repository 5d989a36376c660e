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
}
NAMES = sorted(KERNEL_SAMPLES)
RELEASES = {"debian-6.1": "6.1.", "debian-6.1-4g": "6.1.", "debian-5.10": "5.10."}
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
    assert sum(entries) == m["events"]
    assert m["lost_events"]["total"] == 0 and m["malformed"]["total"] == 0
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
    """No block above the max order the kernel was built with was allocated or freed,
    and THP / hugetlb requests (order 9) appear exactly where the kernel can serve them
    from the buddy allocator."""
    top, = rows(datasets[name], "SELECT max(\"order\") FROM events "
                "WHERE event IN ('mm_page_alloc', 'mm_page_free')")[0]
    assert top <= KERNEL_SAMPLES[name]
    order9, = rows(datasets[name], "SELECT count(*) FROM events "
                   "WHERE event = 'mm_page_alloc' AND \"order\" = 9")[0]
    assert (order9 > 0) == (KERNEL_SAMPLES[name] >= 9)


@pytest.mark.parametrize("name", NAMES)
def test_simulate_with_the_samples_snapshots(cli, datasets, name):
    done = cli("simulate", datasets[name], "--snapshots", SAMPLES / f"{name}.snapshots",
               "--max-order", "9,10", "--search", "linear", "--policy", "free",
               "--mode", "simulated", "-j", "1", "-q")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
