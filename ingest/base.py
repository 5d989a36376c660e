"""What every reader shares: the reader interface and the ingest statistics it fills.

A reader turns one trace file into Arrow record batches of `ingest.schema.READER_EVENTS`,
in time order, and counts what it skipped, lost or could not parse in `IngestStats`,
which becomes the dataset's `meta.json`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import islice
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

#: How many malformed lines (or records) are quoted in meta.json.
MALFORMED_EXAMPLES = 5


@dataclass
class IngestStats:
    """What a reader learned about its input besides the events themselves."""

    format: str = ""
    format_version: str | None = None
    kernel_release: str | None = None
    page_size: int | None = None
    cpus: int | None = None
    clock: str | None = None
    #: events lost per CPU (ring-buffer overruns, perf LOST records); -1 = CPU unknown
    lost_events: Counter = field(default_factory=Counter)
    #: CPUs that reported losses of unknown size (flag without a count)
    lost_unknown: set = field(default_factory=set)
    #: records or lines of other events, by event name ("" when no name could be read)
    skipped: Counter = field(default_factory=Counter)
    malformed: int = 0
    malformed_examples: list[str] = field(default_factory=list)
    truncated: bool = False
    #: format-specific provenance (uname, hostname, options, trace clock...)
    extra: dict[str, Any] = field(default_factory=dict)

    def add_malformed(self, where: str, text: str) -> None:
        """Count one malformed line or record, quoting the first few."""
        self.add_malformed_many(1, ((where, text),))

    def add_malformed_many(self, count: int, examples: Iterable[tuple[str, str]]) -> None:
        """Count `count` malformed lines or records found at once, quoting from `examples`
        (`(where, text)` pairs, in input order) only as many as MALFORMED_EXAMPLES leaves
        room for: the iterable is consumed lazily, so a generator formats no more."""
        self.malformed += count
        room = max(0, MALFORMED_EXAMPLES - len(self.malformed_examples))
        self.malformed_examples += [f"{where}: {text[:200]}"
                                    for where, text in islice(examples, min(room, count))]


class Reader(ABC):
    """One trace format: streams its events as Arrow batches in time order."""

    #: the name `--input-format` accepts and meta.json records
    format: ClassVar[str]
    #: reader-specific keyword options of __init__ (`replay ingest --buffer` ...)
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, path: Path, stats: IngestStats, strict: bool = False) -> None:
        self.path = path
        self.stats = stats
        self.strict = strict
        stats.format = self.format
        #: bytes of the input consumed so far and in all, for progress bars
        self.position = 0
        self.size = path.stat().st_size

    @abstractmethod
    def events(self) -> Iterator[pa.RecordBatch]:
        """Batches of READER_EVENTS, in time order."""

    def stacks(self) -> Iterator[pa.RecordBatch]:
        """Batches of STACKS, available once `events()` is exhausted."""
        return iter(())
