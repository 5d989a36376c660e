"""replay: Linux page-allocator traces into answers.

Ingest kmem page-allocator traces into a Parquet dataset, ask SQL of it, and replay it
through a buddy + memarea model to learn whether the buddy allocator's max order could
be lowered.
"""

__version__ = "0.1.0"
