"""replay: Linux page-allocator traces into answers.

Ingest kmem page-allocator traces into a Parquet dataset, ask SQL of it, and replay it
through a buddy + memarea model to learn whether the buddy allocator's max order could
be lowered.
"""

__version__ = "0.1.0"


def open(paths):  # noqa: A001 - `replay.open(paths)` is the documented entry point
    """Open dataset directories for SQL: `replay.open(["a.replay"]).sql("SELECT ...")`.

    `paths` is one path or a list of them. The returned `replay.database.Database` has
    `.sql(query, params)` giving a DuckDB relation (`.df()`, `.arrow()`, `.fetchall()`)
    over the views `events`, `allocs`, `stacks` and table `datasets`.
    """
    from pathlib import Path

    from replay.database import open_datasets

    if isinstance(paths, (str, Path)):
        paths = [paths]
    return open_datasets(list(paths))
