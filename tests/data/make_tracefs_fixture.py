"""Make `tracefs-<release>.tar.xz`: a frozen tracefs tree with real ring-buffer data.

Run as root (wrapped in `flock` on the machine's tracefs lock): it records the kmem page
events with `replay.capture.Capture` (spools kept) while a second tracing instance records
the same events, and stores the tracefs files `replay record` reads, the raw per-CPU
sub-buffers as `per_cpu/cpuN/trace_pipe_raw`, and the kernel's own text rendering of the
second instance as `oracle.trace.txt`: the independent oracle of the decoder test. Both
instances see every event; each stamps its own time, so timestamps differ by nanoseconds
and the test matches per-CPU sequences.

    flock /tmp/replay-tracefs.lock python tests/data/make_tracefs_fixture.py
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ingest.base import IngestStats
from ingest.ringbuffer_spool import spool_events
from replay.capture import Capture
from replay.dataset import DatasetWriter
from ingest.schema import EVENT_NAMES
from replay.tracefs import find_tracefs
from tests.tracefs_oracle import oracle_instance

HERE = Path(__file__).resolve().parent
WORKLOAD = ["dd", "if=/dev/zero", "of=/dev/null", "bs=2M", "count=1", "status=none"]


def _window(text: str, res) -> bytes:  # noqa: ANN001
    """The oracle's lines within 1 ms of the recording's time span (header lines kept)."""
    ts = [int(b.column("ts_ns")[i].as_py()) for b in spool_events(
        res.spools, res.formats, res.header, {}, IngestStats()) for i in (0, b.num_rows - 1)]
    lo, hi = (min(ts) - 1_000_000) / 1e9, (max(ts) + 1_000_000) / 1e9
    keep = []
    for line in text.splitlines(keepends=True):
        m = re.search(r"\] \S+ +(\d+\.\d+): ", line)
        if line.startswith("#") or (m and lo <= float(m.group(1)) <= hi):
            keep.append(line)
    return "".join(keep).encode()


def main() -> None:
    root, _ = find_tracefs(mount=False)
    with oracle_instance(root, f"replay-fixture-oracle-{os.getpid()}", 8192) as oracle:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            (tmp / "spool").mkdir()
            writer = DatasetWriter(tmp / "ds")
            res = Capture(root, EVENT_NAMES, writer, tmp / "spool", buffer_kb=4096,
                          duration=None, command=tuple(WORKLOAD), kpageflags=False,
                          quiet=True).run()
            writer.abort()
            (oracle / "tracing_on").write_text("0")
            tree = tmp / "tracefs"
            files = {"oracle.trace.txt": _window((oracle / "trace").read_text(), res),
                     "trace_clock": (root / "trace_clock").read_bytes(),
                     "saved_cmdlines": "".join(f"{p} {c}\n" for p, c in res.comms.items()
                                               ).encode(),
                     "tracing_on": b"1\n", "buffer_size_kb": b"1410\n",
                     "options/record-cmd": b"1\n",
                     "events/header_page": (root / "events/header_page").read_bytes()}
            for ev in res.events:
                files[f"events/kmem/{ev}/format"] = (root / f"events/kmem/{ev}/format"
                                                     ).read_bytes()
                files[f"events/kmem/{ev}/enable"] = b"0\n"
            for cpu, spool in res.spools.items():
                files[f"per_cpu/cpu{cpu}/trace_pipe_raw"] = spool.read_bytes()
                files[f"per_cpu/cpu{cpu}/stats"] = "".join(
                    f"{k}: {v}\n" for k, v in res.stats[cpu].items()).encode()
            for rel, data in files.items():
                (tree / rel).parent.mkdir(parents=True, exist_ok=True)
                (tree / rel).write_bytes(data)
            release = ".".join(os.uname().release.split(".")[:2])
            out = HERE / f"tracefs-{release}.tar.xz"
            with tarfile.open(out, "w:xz") as tar:
                tar.add(tree, arcname=".")
            print(out, out.stat().st_size, "bytes;", {c: s.stat().st_size
                                                      for c, s in res.spools.items()})
    subprocess.run(["ls", str(root / "instances")], check=False)


if __name__ == "__main__":
    main()
