"""Readers for the kernel's own `trace` / `trace_pipe` text and `trace-cmd report` text.

Both print one event per line as `comm-pid [(tgid)] [cpu] [irq-flags] time: event: body`
(kernel `trace_print_context`, trace-cmd `trace-read.c`; docs/formats.md §6.1-6.2); they differ
in their preamble and loss markers. `EventLineReader` is the machinery every reader of
that line grammar shares (perf script's too): blocks of lines through the compiled
scanner, the few lines that are not events through Arrow regexes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.base import Reader
from ingest.lines import MAX_LINE_BYTES, LineBlock, line_blocks
from ingest.text_scan import KIND_BAD_PAGE, KIND_NONE, KIND_OTHER, KIND_PAGE, TS_NS, TS_RAW, TS_US
from ingest.text_scan import Scan, scan
from ingest.text_values import dictionary, strings, value_columns
from ingest.errors import InputError
from ingest.schema import event_batch

#: a line naming a page event: if it does not parse, it is malformed, not foreign
PAGE_EVENT_WORD = r"\b(mm_page_\w+|mm_pagevec_free):"

_TS_UNITS = {TS_NS: "ns", TS_US: "us", TS_RAW: "raw clock counts"}


class EventLineReader(Reader):
    """Event lines of the `comm pid [cpu] time: event: body` grammar in, schema batches out."""

    #: loss-marker regex with groups `cpu` and (optional) `n`, or None
    LOSS: ClassVar[str | None]
    #: regex of preamble/comment lines to ignore
    IGNORE: ClassVar[str]
    #: regex with a group `cpus` on a preamble line giving the CPU count, or None
    CPUS: ClassVar[str | None] = None
    #: whether callchain frame lines follow sample lines (perf script -g)
    FRAMES: ClassVar[bool] = False
    #: first byte of lines that continue the line before (perf callchain frames)
    CONTINUATION: ClassVar[bytes | None] = None

    def events(self) -> Iterator[pa.RecordBatch]:
        for block in line_blocks(self.path, continuation=self.CONTINUATION,
                                 long_line=self.long_line):
            self.position = block.raw_position
            sc = scan(block.data, block.starts, block.ends, self.FRAMES)
            if block.cut and sc.kind[-1] == KIND_PAGE:
                # a page event cut mid-line (`gfp_flags=GFP_HI`, `pfn=0x1`) is malformed,
                # never a value (docs/formats.md §6.4)
                sc.kind[-1] = KIND_BAD_PAGE
                self.stats.truncated = True
            self._account(block, sc)
            rows = np.flatnonzero(sc.kind == KIND_PAGE)
            if len(rows):
                cols = self.columns(block, sc, rows)
                yield event_batch(cols, len(rows))

    def columns(self, block: LineBlock, sc: Scan, rows: np.ndarray) -> dict[str, pa.Array]:
        """Schema columns of the page-event lines `rows`."""
        buf = block.data
        cols = value_columns(buf, sc.vals[rows], sc.valid[rows], sc.gfp_s[rows], sc.gfp_e[rows])
        cols["event"] = dictionary(sc.ev[rows])
        cols["comm"] = strings(buf, sc.comm_s[rows], sc.comm_e[rows]).dictionary_encode()
        cols["pid"] = sc.pid[rows]
        cols["cpu"] = sc.cpu[rows]
        cols["ts_ns"] = sc.ts[rows]
        has = sc.has_context[rows]
        if has.any():
            cols["context"] = pa.array(sc.context[rows], mask=~has)
        if "timestamps" not in self.stats.extra:
            self.stats.extra["timestamps"] = _TS_UNITS[int(sc.ts_kind[rows[0]])]
        return cols

    def _account(self, block: LineBlock, sc: Scan) -> None:
        """Count lines of other events, loss markers and malformed page-event lines."""
        other = np.flatnonzero(sc.kind == KIND_OTHER)
        if len(other):
            self.count_skipped(strings(block.data, sc.name_s[other], sc.name_e[other]))
        bad = np.flatnonzero(sc.kind == KIND_BAD_PAGE)
        none = np.flatnonzero(sc.kind == KIND_NONE)
        if len(none):
            bad = np.sort(np.concatenate([bad, self._unmatched(block, none)]))
        if len(bad):
            self._malformed(block, bad)

    def _unmatched(self, block: LineBlock, index: np.ndarray) -> np.ndarray:
        """Account for lines that are not event lines; return those of page events."""
        rest = block.text(index)
        if self.LOSS is not None:
            not_loss = pc.invert(self.count_losses(rest))
            rest = rest.filter(not_loss)
            index = index[not_loss.to_numpy(zero_copy_only=False)]
        ignorable = pc.match_substring_regex(rest, self.IGNORE)
        if self.CPUS is not None:
            self._preamble(rest.filter(ignorable))
        looks_page = pc.and_not(pc.match_substring_regex(rest, PAGE_EVENT_WORD), ignorable)
        foreign = pc.and_not(pc.invert(ignorable), looks_page)
        n_foreign = int(pc.sum(foreign.cast(pa.int64())).as_py() or 0)
        if n_foreign:
            self.stats.skipped[""] += n_foreign
        return index[looks_page.to_numpy(zero_copy_only=False)]

    def count_skipped(self, names: pa.Array) -> None:
        """Count lines of other events by event name."""
        vc = pc.value_counts(names)
        for name, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
            self.stats.skipped[name] += n

    def count_losses(self, lines: pa.Array) -> pa.Array:
        """Count the loss markers (LOSS) among `lines`; return which lines are markers."""
        loss = pc.extract_regex(lines, self.LOSS)
        got = loss.filter(loss.is_valid())
        for cpu, n in zip(pc.struct_field(got, "cpu").to_pylist(),
                          pc.struct_field(got, "n").to_pylist()):
            if n:
                self.stats.lost_events[int(cpu)] += int(n)
            else:
                self.stats.lost_unknown.add(int(cpu))
        return loss.is_valid()

    def _preamble(self, lines: pa.Array) -> None:
        """Facts the preamble states: CPU count, entries overwritten in the ring buffer."""
        for line in lines.to_pylist()[:64]:
            m = re.search(self.CPUS, line)
            if m:
                self.stats.cpus = int(m["cpus"])
                if m.groupdict().get("written"):
                    # `entries-in-buffer/entries-written: A/B`: B - A were overwritten
                    over = int(m["written"]) - int(m["kept"])
                    if over > 0:
                        self.stats.lost_events[-1] += over

    def long_line(self, line_no: int) -> None:
        """Count a line over the length limit (skipped unread) as malformed."""
        why = f"line longer than {MAX_LINE_BYTES} bytes"
        if self.strict:
            raise InputError(self.path, why, where=f"line {line_no}")
        self.stats.add_malformed(f"line {line_no}", why)

    def _malformed(self, block: LineBlock, index: np.ndarray) -> None:
        numbers = block.line_numbers(index)
        if self.strict:
            raise InputError(self.path, f"malformed page event: {block.line(int(index[0]))}",
                             where=f"line {numbers[0]}")
        self.stats.add_malformed_many(len(index), ((f"line {line_no}", block.line(int(i)))
                                                   for i, line_no in zip(index, numbers)))


class FtraceTextReader(EventLineReader):
    """The kernel's `trace` / `trace_pipe` files (with or without tgid and irq flags)."""

    format = "ftrace"
    LOSS = r"^CPU:(?P<cpu>\d+) \[LOST (?:(?P<n>\d+) )?EVENTS\]"
    IGNORE = r"^\s*(#|$)"
    CPUS = r"entries-in-buffer/entries-written: (?P<kept>\d+)/(?P<written>\d+)\s+#P:(?P<cpus>\d+)"


class TraceCmdReportReader(EventLineReader):
    """`trace-cmd report` output (µs, or ns with -t)."""

    format = "trace-cmd-report"
    LOSS = r"^\s*CPU:\s*(?P<cpu>\d+) \[(?:(?P<n>\d+) )?EVENTS DROPPED\]"
    IGNORE = r"^(version = |cpus=|CPU \d+ is empty|\s*#|trace-cmd: |\s*$)"
    CPUS = r"^cpus=(?P<cpus>\d+)"
