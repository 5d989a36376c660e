"""Chosen rows of events.parquet, read a row group at a time: the engine's tables need a
few columns of the requests' rows only, a small share of a large trace, and reading the
whole columns first (8.2 M rows of seq, ts_ns, pid, comm, gfp_flags, stack_id: 280 MiB)
was the largest allocation of a report after the sweep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def take_rows(path: Path, columns: list[str], rows: np.ndarray) -> pa.Table:
    """`pq.read_table(path, columns=columns).take(rows).combine_chunks()`, holding one row
    group's columns and the rows kept at a time instead of the whole columns."""
    rows = np.asarray(rows, np.int64)
    ascending = bool((rows[1:] >= rows[:-1]).all())
    order = None if ascending else np.argsort(rows, kind="stable")
    wanted = rows if order is None else rows[order]
    pf = pq.ParquetFile(path)
    parts = []
    start = lo = 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        hi = int(np.searchsorted(wanted, start + n, "left"))
        if hi > lo:
            group = pf.read_row_group(g, columns=columns)
            parts.append(group.take(pa.array(wanted[lo:hi] - start)))
            del group
        lo, start = hi, start + n
    if lo < len(wanted) or (len(wanted) and wanted[0] < 0):
        raise IndexError(f"{path}: rows outside [0, {start})")
    table = (pa.concat_tables(parts) if parts
             else pf.schema_arrow.empty_table().select(columns)).combine_chunks()
    if order is not None:
        table = table.take(pa.array(np.argsort(order, kind="stable")))
    return table
