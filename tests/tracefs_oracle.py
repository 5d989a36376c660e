"""A second tracing instance recording the kmem page events: the oracle beside a capture.

Used by the live test of tests/test_record.py and the live scripts
(tests/bench/bench_record.py, tests/data/make_tracefs_fixture.py) to have the kernel
record the same events as `replay record`, independently of it. Needs root and a live
tracefs, one capture at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ingest.schema import EVENT_NAMES


@contextmanager
def oracle_instance(root: Path, name: str, buffer_kb: int) -> Iterator[Path]:
    """Tracing instance `name` under tracefs `root`, recording the kmem page events into
    a `buffer_kb` buffer until the block ends; then its events are disabled and it is
    removed."""
    inst = root / "instances" / name
    inst.mkdir()
    try:
        (inst / "tracing_on").write_text("0")
        (inst / "buffer_size_kb").write_text(str(buffer_kb))
        for ev in EVENT_NAMES:
            (inst / "events" / "kmem" / ev / "enable").write_text("1")
        (inst / "tracing_on").write_text("1")
        yield inst
    finally:
        for ev in EVENT_NAMES:
            (inst / "events" / "kmem" / ev / "enable").write_text("0")
        inst.rmdir()
