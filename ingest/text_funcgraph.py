"""Reader for `function_graph` tracer output, where trace events appear as comments.

With the function_graph tracer, an enabled event is printed inside the call graph as
`/* mm_page_alloc: page=... */` (kernel `print_graph_comment`). The line's prologue has
the columns the funcgraph options turn on (`print_graph_prologue`): absolute time
`secs.usecs |` (funcgraph-abstime), CPU ` N)` (funcgraph-cpu, on by default), task
`comm-pid |` (funcgraph-proc), then the empty duration column and the indentation.
Without funcgraph-abstime there is no time: `ts_ns` stays null and `seq` keeps the file
order. Comment lines are few among the call-graph lines, so an RE2 pass finds them and
the shared compiled decoder reads their bodies.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.lines import line_blocks
from ingest.text_ftrace import PAGE_EVENT_WORD, EventLineReader
from ingest.text_scan import MAX_TS_SECS
from ingest.text_values import CANONICAL, TEXT_EVENT_NAMES, decode_bodies, dictionary
from ingest.text_values import value_columns
from ingest.schema import event_batch

COMMENT_LINE = (
    r"^\s*(?:(?P<secs>\d{1,18})\.(?P<usecs>\d{6})\s+\|\s+)?"
    r"(?:(?P<cpu>\d{1,9})\)\s+)?"
    r"(?:(?P<comm>\S.*?)-(?P<pid>\d{1,9})\s+\|\s+)?"
    r"[^/]*/\*\s(?P<event>\w+):\s+(?P<body>.*?)\s*\*/\s*$"
)


def _group(parts: pa.StructArray, name: str) -> pa.Array:
    """A regex group's text, null where the (optional) group did not take part."""
    text = pc.struct_field(parts, name)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


class FunctionGraphReader(EventLineReader):
    """function_graph tracer text with kmem events as `/* event: ... */` comments."""

    format = "function-graph"
    LOSS = r"^\s*CPU:(?P<cpu>\d+) \[LOST (?:(?P<n>\d+) )?EVENTS\]"
    IGNORE = r"^\s*(#|$)"

    def events(self) -> Iterator[pa.RecordBatch]:
        for block in line_blocks(self.path, long_line=self.long_line):
            self.position = block.raw_position
            lines = block.text(np.arange(len(block.starts)))
            parts = pc.extract_regex(lines, COMMENT_LINE)
            matched = parts.is_valid().to_numpy(zero_copy_only=False)
            comment = np.flatnonzero(matched)
            parts = parts.filter(pa.array(matched))
            index = pc.index_in(pc.struct_field(parts, "event"),
                                value_set=pa.array(TEXT_EVENT_NAMES))
            page = index.is_valid().to_numpy(zero_copy_only=False)
            code = index.fill_null(0).to_numpy()
            if not page.all():
                self.count_skipped(pc.struct_field(parts, "event").filter(pa.array(~page)))
            bad = self._call_graph_lines(block, np.flatnonzero(~matched))
            parts = parts.filter(pa.array(page))
            rows = comment[page]
            if len(rows):
                batch, ok = self._batch(parts, CANONICAL[code[page].astype(np.int64)])
                bad = np.sort(np.concatenate([bad, rows[~ok]]))
                if batch.num_rows:
                    yield batch
            if len(bad):
                self._malformed(block, bad)

    def _batch(self, parts: pa.StructArray, evs: np.ndarray) -> tuple[pa.RecordBatch, np.ndarray]:
        bodies = pc.struct_field(parts, "body")
        offsets = np.frombuffer(bodies.buffers()[1], np.int32)[
            bodies.offset : bodies.offset + len(bodies) + 1].astype(np.int64)
        data = bodies.buffers()[2]
        buf = np.frombuffer(data if data is not None else b"", np.uint8)
        buf.setflags(write=False)  # the type text blocks have: one compiled variant
        vals, valid, gfp_s, gfp_e, ok = decode_bodies(buf, offsets[:-1], offsets[1:], evs)
        # a time past int64 nanoseconds makes the line malformed (it would wrap)
        ok &= ~pc.greater(_group(parts, "secs").cast(pa.int64()), MAX_TS_SECS).fill_null(
            False).to_numpy(zero_copy_only=False)
        keep = pa.array(ok)
        cols = value_columns(buf, vals[ok], valid[ok], gfp_s[ok], gfp_e[ok])
        cols["event"] = dictionary(evs[ok])
        parts = parts.filter(keep)
        cols["comm"] = _group(parts, "comm").dictionary_encode()
        for col in ("pid", "cpu"):
            cols[col] = _group(parts, col).cast(pa.int32())
        secs = _group(parts, "secs").cast(pa.int64())
        usecs = _group(parts, "usecs").cast(pa.int64())
        cols["ts_ns"] = pc.add(pc.multiply(secs, 1_000_000_000), pc.multiply(usecs, 1000))
        return event_batch(cols, int(ok.sum())), ok

    def _call_graph_lines(self, block, index: np.ndarray) -> np.ndarray:  # noqa: ANN001
        """Lines that are no event comment: loss markers, call graph, or a malformed page
        event; the call-graph lines are the tracer's own and are not counted."""
        if not len(index):
            return index
        rest = block.text(index)
        self.count_losses(rest)
        page = pc.match_substring_regex(rest, r"/\*\s*" + PAGE_EVENT_WORD)
        return index[page.to_numpy(zero_copy_only=False)]
