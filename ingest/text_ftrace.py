"""Readers for the kernel's own `trace` / `trace_pipe` text and `trace-cmd report` text.

Both print one event per line as `comm-pid [(tgid)] [cpu] [irq-flags] time: event: body`
(kernel `trace_print_context`, trace-cmd `trace-read.c`; FORMATS.md §6.1-6.2); they differ
in their preamble and loss markers. Parsing is vectorized over blocks of lines with RE2.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.base import Reader
from ingest.lines import LineBlock, line_blocks
from ingest.text_values import (
    canonical_names,
    context_from_flags,
    decode_bodies,
    page_event_index,
    parse_timestamps,
)
from replay.errors import InputError
from replay.schema import event_batch

# comm is right-aligned and may hold spaces and dashes: the pid is the last -digits
# before the CPU bracket. The irq-flags token (3.3+) never starts with a digit.
EVENT_LINE = (
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*(?P<tgid>[-\d]+)\)\s+)?"
    r"\[(?P<cpu>\d+)\]\s+(?:(?P<flags>[^\s\d]\S*)\s+)?"
    r"(?P<ts>\d+(?:\.\d+)?):\s+(?P<event>\w+):\s*(?P<body>.*)$"
)

#: a line naming a page event: if it does not parse, it is malformed, not foreign
PAGE_EVENT_WORD = r"\b(mm_page_\w+|mm_pagevec_free):"


class _EventLineReader(Reader):
    """Shared machinery: event lines of the ftrace grammar in, schema batches out."""

    #: loss-marker regex with groups `cpu` and (optional) `n`
    LOSS: str
    #: regex of preamble/comment lines to ignore
    IGNORE: str

    def events(self) -> Iterator[pa.RecordBatch]:
        for block in line_blocks(self.path):
            self.position = block.raw_position
            batch = self._parse(block)
            if batch is not None and batch.num_rows:
                yield batch

    def _parse(self, block: LineBlock) -> pa.RecordBatch | None:
        lines = block.lines
        parts = pc.extract_regex(lines, EVENT_LINE)
        matched = parts.is_valid()
        self._count_unmatched(block, pc.invert(matched))
        parts = parts.filter(matched)
        where = np.flatnonzero(matched.to_numpy(zero_copy_only=False))
        names = pc.struct_field(parts, "event")
        index = page_event_index(names)
        is_page = index.is_valid()
        others = pc.filter(names, pc.invert(is_page))
        if len(others):
            vc = pc.value_counts(others)
            for name, count in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                self.stats.skipped[name] += count
        parts = parts.filter(is_page)
        where = where[is_page.to_numpy(zero_copy_only=False)]
        if len(parts) == 0:
            return None
        events = canonical_names(index.filter(is_page))
        cols, bad = decode_bodies(events, pc.struct_field(parts, "body"))
        cols["event"] = events
        cols["comm"] = pc.utf8_trim_whitespace(pc.struct_field(parts, "comm"))
        cols["pid"] = pc.struct_field(parts, "pid").cast(pa.int32())
        cols["cpu"] = pc.struct_field(parts, "cpu").cast(pa.int32())
        cols["ts_ns"] = parse_timestamps(pc.struct_field(parts, "ts"))
        flags = pc.struct_field(parts, "flags")
        cols["context"] = context_from_flags(flags)
        if bad.any():
            self._malformed(block, where[bad], lines)
            keep = pa.array(~bad)
            cols = {k: pc.filter(v, keep) for k, v in cols.items()}
        n = int((~bad).sum())
        return event_batch(cols, n)

    def _count_unmatched(self, block: LineBlock, unmatched: pa.Array) -> None:
        rest = block.lines.filter(unmatched)
        if len(rest) == 0:
            return
        loss = pc.extract_regex(rest, self.LOSS)
        got = loss.filter(loss.is_valid())
        for cpu, n in zip(pc.struct_field(got, "cpu").to_pylist(),
                          pc.struct_field(got, "n").to_pylist()):
            if n:
                self.stats.lost_events[int(cpu)] += int(n)
            else:
                self.stats.lost_unknown.add(int(cpu))
        rest_idx = np.flatnonzero(unmatched.to_numpy(zero_copy_only=False))
        not_loss = pc.invert(loss.is_valid())
        rest = rest.filter(not_loss)
        rest_idx = rest_idx[not_loss.to_numpy(zero_copy_only=False)]
        ignorable = pc.or_(
            pc.match_substring_regex(rest, self.IGNORE),
            pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(rest)), 0),
        )
        looks_page = pc.and_not(pc.match_substring_regex(rest, PAGE_EVENT_WORD), ignorable)
        mask = looks_page.to_numpy(zero_copy_only=False)
        if mask.any():
            self._malformed(block, rest_idx[mask], block.lines)
        foreign = pc.and_not(pc.invert(ignorable), looks_page)
        self.stats.skipped[""] += int(pc.sum(foreign.cast(pa.int64())).as_py() or 0)
        if not self.stats.skipped[""]:
            del self.stats.skipped[""]

    def _malformed(self, block: LineBlock, index: np.ndarray, lines: pa.Array) -> None:
        numbers = block.line_numbers(index)
        if self.strict:
            raise InputError(self.path, f"malformed page event: {lines[int(index[0])].as_py()}",
                             where=f"line {numbers[0]}")
        for i, line_no in zip(index[:5], numbers[:5]):
            self.stats.add_malformed(f"line {line_no}", lines[int(i)].as_py())
        self.stats.malformed += len(index) - min(len(index), 5)


class FtraceTextReader(_EventLineReader):
    """The kernel's `trace` / `trace_pipe` files (with or without tgid and irq flags)."""

    format = "ftrace"
    LOSS = r"^CPU:(?P<cpu>\d+) \[LOST (?:(?P<n>\d+) )?EVENTS\]"
    IGNORE = r"^\s*#"


class TraceCmdReportReader(_EventLineReader):
    """`trace-cmd report` output (µs, or ns with -t)."""

    format = "trace-cmd-report"
    LOSS = r"^\s*CPU:\s*(?P<cpu>\d+) \[(?:(?P<n>\d+) )?EVENTS DROPPED\]"
    IGNORE = r"^(version = |cpus=|CPU \d+ is empty|\s*#|trace-cmd: )"
