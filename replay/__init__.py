"""replay: Linux page-allocator traces into answers.

Ingest kmem page-allocator traces into a Parquet dataset, ask SQL of it, and replay it
through a buddy + memarea model to learn whether the buddy allocator's max order could
be lowered.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import ingest  # noqa: F401 - first: it points numba's cache away from site-packages

if TYPE_CHECKING:
    from replay.database import Database

__version__ = "0.1.0"


def open(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> Database:  # noqa: A001
    """Open dataset directories for SQL: `replay.open(["a.replay"]).sql("SELECT ...")`.

    `paths` is one path or a list of them. The returned `replay.database.Database` has
    `.sql(query, params)` giving a DuckDB relation (`.df()`, `.arrow()`, `.fetchall()`)
    over the views `events`, `allocs`, `stacks` and table `datasets`.
    """
    from replay.database import open_datasets

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return open_datasets(list(paths))
