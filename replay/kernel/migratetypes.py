"""Migratetypes: how each kernel numbers them, and the engine's own numbering.

include/linux/mmzone.h `enum migratetype`. Linux 4.4 reordered it: MOVABLE became 1 and
RECLAIMABLE 2 (they were 2 and 1), and MIGRATE_RESERVE gave way to MIGRATE_HIGHATOMIC
(016c13daa5c9, "mm, page_alloc: use masks and shifts when converting GFP flags to migrate
types", and 0aaa29a56e4f, "mm, page_alloc: reserve pageblocks for high-order atomic
allocations on demand", both v4.4). Above the per-CPU types the numbers depend on the
configuration (CMA, ISOLATE). The engine always works in the 4.4+ numbering of the
per-CPU types, `ENGINE_*` below; `to_engine` translates a trace's numbers.
"""

from __future__ import annotations

import numpy as np

from replay.kernel.release import KernelRelease, at_least

#: The engine's migratetypes: the per-CPU types (MIGRATE_PCPTYPES), 4.4+ numbering.
UNMOVABLE, MOVABLE, RECLAIMABLE = 0, 1, 2
PCPTYPES = 3

#: Names as /proc/pagetypeinfo prints them, in enum order, per era.
NAMES_4_4 = ("Unmovable", "Movable", "Reclaimable", "HighAtomic")
NAMES_BEFORE_4_4 = ("Unmovable", "Reclaimable", "Movable", "Reserve")
#: What a number above the era's table means (CMA or ISOLATE, by configuration).
NAME_ABOVE = "CMA/Isolate"

#: fallbacks[] of mm/page_alloc.c in the engine's numbering: the types a request of each
#: type may take free blocks from, in order (unchanged in substance since 2.6.24's
#: mobility grouping; 4.4 renumbered it).
FALLBACKS = np.array([[RECLAIMABLE, MOVABLE], [RECLAIMABLE, UNMOVABLE],
                      [UNMOVABLE, MOVABLE]], dtype=np.int64)


def names(release: KernelRelease | None) -> tuple[str, ...]:
    """The kernel's names of its migratetype numbers 0..3."""
    return NAMES_4_4 if at_least(release, 4, 4) else NAMES_BEFORE_4_4


def to_engine(traced: np.ndarray, release: KernelRelease | None) -> np.ndarray:
    """Traced migratetype numbers in the engine's numbering; -1 where the number is not a
    per-CPU type (HIGHATOMIC / RESERVE, CMA, ISOLATE) or missing (negative)."""
    traced = np.asarray(traced, np.int64)
    table = np.array([UNMOVABLE, MOVABLE, RECLAIMABLE] if at_least(release, 4, 4)
                     else [UNMOVABLE, RECLAIMABLE, MOVABLE], np.int64)
    ok = (traced >= 0) & (traced < PCPTYPES)
    return np.where(ok, table[np.clip(traced, 0, PCPTYPES - 1)], -1)


def _sql_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def sql_macros() -> str:
    """`migratetype_name(mt, names, release)`: the kernel's name of a migratetype number;
    `names` is the dataset's own list (pagetypeinfo snapshot), else the era's table."""
    return f"""
CREATE OR REPLACE MACRO migratetype_name(mt, names, release) AS
    CASE
        WHEN mt IS NULL THEN NULL
        WHEN names IS NOT NULL AND mt >= 0 AND mt < len(names) THEN names[mt + 1]
        WHEN mt BETWEEN 0 AND 3 AND coalesce(kernel_before(release, 4, 4), false)
            THEN {_sql_list(NAMES_BEFORE_4_4)}[mt + 1]
        WHEN mt BETWEEN 0 AND 3 THEN {_sql_list(NAMES_4_4)}[mt + 1]
        WHEN mt = 4 THEN '{NAME_ABOVE}'
        ELSE 'type ' || mt
    END;
"""
