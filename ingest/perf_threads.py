"""Thread names over time from perf COMM and FORK records, as `perf script` shows them.

perf keeps a comm per thread that COMM records set (exec, prctl) and FORK records copy
from the parent thread (tools/perf/util/machine.c, machine__process_fork_event and
thread__fork); a sample shows the comm its thread had at the sample's time. Thread 0 is
"swapper" (machine__init); a thread never named shows no comm (perf prints ":tid").

Records arrive only roughly in time order, so changes are queued and applied in time
order up to the time the caller has reached; lookups for many samples are compiled.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ingest.ftrace_entry import numpy_to_arrow, strings_to_arrow
from ingest.kernels import kernel


@kernel("i8[::1], i8[::1], i4[::1], i8[::1], i8[::1], i4[::1]")
def _lookup(t_tid, t_ts, t_code, tids, times, out):
    """out[i] = code of the last change of thread tids[i] at or before times[i], or -1."""
    for i in range(tids.shape[0]):
        lo = np.searchsorted(t_tid, tids[i], side="left")
        hi = np.searchsorted(t_tid, tids[i], side="right")
        t = times[i]
        if t < 0:  # a sample without time: the thread's latest name
            out[i] = t_code[hi - 1] if hi > lo else -1
            continue
        j = lo + np.searchsorted(t_ts[lo:hi], t, side="right") - 1
        out[i] = t_code[j] if j >= lo else -1


class ThreadComms:
    """Comm changes per thread; `comms(tids, times)` names samples."""

    def __init__(self) -> None:
        self.names: list[str] = ["swapper"]
        self._codes: dict[str, int] = {"swapper": 0}
        # queued changes: (time, seq, tid, code or None for a fork, parent tid)
        self._queue: list[tuple[int, int, int, int | None, int]] = []
        self._seq = 0
        # changes applied so far, in the order applied, and each thread's latest comm
        self._tid: list[int] = [0]
        self._ts: list[int] = [-1]
        self._code_of: list[int] = [0]
        self._latest: dict[int, int] = {0: 0}
        self._table: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _code(self, name: str) -> int:
        code = self._codes.get(name)
        if code is None:
            code = self._codes[name] = len(self.names)
            self.names.append(name)
        return code

    def add_comm(self, time: int, tid: int, name: str) -> None:
        """A COMM record: thread `tid` is called `name` from `time` (-1: unknown time)."""
        self._queue.append((time, self._seq, tid, self._code(name), -1))
        self._seq += 1

    def add_fork(self, time: int, tid: int, parent_tid: int) -> None:
        """A FORK record: thread `tid` starts at `time` with its parent's comm."""
        self._queue.append((time, self._seq, tid, None, parent_tid))
        self._seq += 1

    def advance(self, until: int | None) -> None:
        """Apply the queued changes up to time `until` (all of them when None)."""
        if not self._queue:
            return
        self._queue.sort()
        cut = len(self._queue)
        if until is not None:
            cut = next((i for i, q in enumerate(self._queue) if q[0] > until), cut)
        for time, _, tid, code, parent in self._queue[:cut]:
            if code is None:
                code = self._latest.get(parent, -1)
            self._tid.append(tid)
            self._ts.append(time)
            self._code_of.append(code)
            self._latest[tid] = code
        del self._queue[:cut]
        if cut:
            self._table = None

    def comms(self, tids: np.ndarray, times: np.ndarray) -> pa.DictionaryArray:
        """Each sample's comm (null when its thread was never named)."""
        if self._table is None:
            tid = np.array(self._tid, np.int64)
            ts = np.array(self._ts, np.int64)
            order = np.lexsort((np.arange(len(tid)), ts, tid))  # by thread, time, arrival
            self._table = (tid[order], ts[order], np.array(self._code_of, np.int32)[order])
        out = np.empty(len(tids), np.int32)
        _lookup(*self._table, np.asarray(tids, np.int64), np.asarray(times, np.int64), out)
        return pa.DictionaryArray.from_arrays(numpy_to_arrow(out, out >= 0),
                                              strings_to_arrow(self.names))
