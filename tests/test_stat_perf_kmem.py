"""`replay stat` against `perf kmem --page stat` on the same real perf.data.

sample_traces/ holds a real perf.data, the `perf script` text of it and perf kmem's own
output for it; replay ingests both the text and the perf.data itself. Total allocation requests and every cell of
the order x migratetype table must agree; the columns must carry the traced kernel's
names (perf kmem prints pre-4.4 labels: on 6.18 its "Reclaimable" is MOVABLE).
"""

from __future__ import annotations

import importlib.util
import re

import pytest

from replay.database import open_datasets
from replay.stat import page_stat
from tests.conftest import SAMPLES

#: perf kmem's table columns, by migratetype number (builtin-kmem.c print_page_summary)
PERF_COLUMNS = ["Unmovable", "Reclaimable", "Movable", "Reserved", "CMA/Isolated"]
#: the same numbers on Linux 4.4+ (the sample's 6.18 kernel), as pagetypeinfo names them
KERNEL_NAMES = ["Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA/Isolate"]

SUMMARY = re.compile(r"^(Total [\w+-]+ (?:requests|failures))\s*:\s*(\d+)\s*\[\s*(\d+) KB \]$",
                     re.MULTILINE)


def _summary(text: str) -> dict[str, tuple[int, int]]:
    return {m[1]: (int(m[2]), int(m[3])) for m in SUMMARY.finditer(text)}


def _table(text: str) -> tuple[list[str], dict[tuple[int, int], int]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Order"))
    header = re.split(r"\s{2,}", lines[start].strip())[1:]
    cells = {}
    for line in lines[start + 2:]:
        parts = line.split()
        if not parts or not parts[0].isdigit():
            break
        for m, value in enumerate(parts[1:]):
            cells[(int(parts[0]), m)] = 0 if value == "." else int(value)
    return header, cells


def _reader(module: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(importlib.util.find_spec(module) is None,
                              reason=f"reader {module} not built yet")


@pytest.mark.parametrize("name, source", [
    pytest.param("perf-nog", "perf-nog.perf-script.txt.xz", marks=_reader("ingest.text_perf")),
    pytest.param("perf-nog", "perf-nog.perf.data", marks=_reader("ingest.perf_data")),
], ids=["perf-script-text", "perf.data"])
def test_stat_matches_perf_kmem(tmp_path, name, source):
    from replay.ingestion import ingest

    perf = (SAMPLES / f"{name}.perf-kmem-stat.txt").read_text()
    ds = ingest(SAMPLES / source, tmp_path / name, quiet=True)
    with open_datasets([ds]) as db:
        ours = page_stat(db)

    perf_sum, our_sum = _summary(perf), _summary(ours)
    assert our_sum["Total allocation requests"] == perf_sum["Total allocation requests"]
    assert perf_sum["Total allocation requests"][0] > 1000
    # On 6.18 every mm_page_free_batched repeats an mm_page_free: same free count.
    assert our_sum["Total free requests"] == perf_sum["Total free requests"]

    perf_header, perf_cells = _table(perf)
    our_header, our_cells = _table(ours)
    assert perf_header == PERF_COLUMNS
    assert our_header[:5] == KERNEL_NAMES[: len(our_header[:5])]
    assert len(perf_cells) == 11 * 5  # orders 0..10
    for (order, mt), count in perf_cells.items():
        assert our_cells.get((order, mt), 0) == count, (order, PERF_COLUMNS[mt])
    assert all(c == 0 for (order, _), c in our_cells.items() if order > 10)
    assert sum(our_cells.values()) == perf_sum["Total allocation requests"][0]
