#!/usr/bin/env python3
"""Write the part of a kallsyms that names the kernel frames of some replay datasets.

Usage: kallsyms_subset.py KALLSYMS DATASET... > OUT

For every kernel frame address in the datasets' stacks.parquet it keeps, from KALLSYMS,
every line at the greatest symbol address <= the frame address and every line at the
next symbol address (which ends the symbol), counting only the symbol types perf uses
(T W D B, any case), plus `_text`/`_stext`. Looking a frame up in the subset then gives
the same `function+0xoff` as in the full table, so tests can symbolize the committed
perf.data samples without the machine they were recorded on.
"""

import bisect
import sys

import duckdb


def main() -> None:
    kallsyms, datasets = sys.argv[1], sys.argv[2:]
    lines = open(kallsyms).read().splitlines()
    entries = []
    for i, line in enumerate(lines):
        parts = line.split()
        if len(parts) >= 3 and parts[1] in "TtWwDdBb" and int(parts[0], 16):
            entries.append((int(parts[0], 16), i))
    entries.sort()
    starts = sorted({a for a, _ in entries})
    wanted = set()
    for ds in datasets:
        for (addr,) in duckdb.sql(f"SELECT DISTINCT addr FROM '{ds}/stacks.parquet' "
                                  "WHERE context = 'kernel'").fetchall():
            k = bisect.bisect_right(starts, addr) - 1
            wanted.update(starts[max(k, 0) : k + 2])
    keep = {i for a, i in entries if a in wanted}
    keep |= {i for i, line in enumerate(lines) if line.split()[2:3] in (["_text"], ["_stext"])}
    sys.stdout.write("".join(lines[i] + "\n" for i in sorted(keep)))


if __name__ == "__main__":
    main()
