"""Coverage-guided fuzzing of one target with atheris (libFuzzer for Python).

    python -m tests.fuzz.fuzz TARGET --out DIR [libFuzzer flags, e.g. -runs=10000]

runs from the repository root. The readers' Python code is instrumented for coverage
(their compiled numba kernels are not: libFuzzer sees them as opaque calls, and the
mutations that reach them are found through the Python around them). DIR/corpus is
seeded from the target's seeds and grows with the inputs libFuzzer finds interesting;
DIR/runs holds the number of inputs run so far; an exception other than ReplayError is
a crash: its traceback is appended to DIR/crashes.txt and the input kept as
DIR/crash-N, and fuzzing goes on. A hang is libFuzzer's `-timeout`, which ends the
process (tests/fuzz/campaign.py restarts it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import atheris

# The readers' compiled kernels are built (once per source version) by an uninstrumented
# process: numba cannot compile the bytecode atheris instruments, and a failed build
# would make every later run fall back to the JIT.
subprocess.run([sys.executable, "-c", "from ingest import kernels; kernels.load()"],
               check=True)

with atheris.instrument_imports(include=["ingest", "replay"]):
    import ingest  # noqa: F401
    import ingest.kallsyms  # noqa: F401
    import ingest.perf_data  # noqa: F401
    import ingest.text_ftrace  # noqa: F401
    import ingest.text_funcgraph  # noqa: F401
    import ingest.text_perf  # noqa: F401
    import ingest.tracedat  # noqa: F401
    import replay.database  # noqa: F401
    import replay.dataset  # noqa: F401
    import replay.info  # noqa: F401
    import replay.ingestion  # noqa: F401

from ingest.errors import ReplayError
from tests.fuzz.targets import TARGETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--out", type=Path, required=True)
    args, libfuzzer = parser.parse_known_args()
    target = TARGETS[args.target]
    out: Path = args.out
    corpus = out / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        for i, seed in enumerate(target.seeds()):
            (corpus / f"seed-{i}").write_bytes(seed)
    work = Path(tempfile.mkdtemp(prefix=f"replay-fuzz-{target.name}-"))
    runs_fd = os.open(out / "runs", os.O_RDWR | os.O_CREAT, 0o644)
    done = int(os.pread(runs_fd, 32, 0).decode() or 0)
    crashes = len(list(out.glob("crash-*")))

    def one_input(data: bytes) -> None:
        nonlocal done, crashes
        try:
            target.run(data, work)
        except ReplayError:
            pass
        except Exception:  # noqa: BLE001 - anything else is what we are looking for
            crashes += 1
            (out / f"crash-{crashes}").write_bytes(data)
            with open(out / "crashes.txt", "a") as f:
                f.write(f"--- crash-{crashes}\n{traceback.format_exc()}\n")
        done += 1
        os.pwrite(runs_fd, f"{done:<20d}".encode(), 0)

    sys.argv = [sys.argv[0], *libfuzzer, f"-artifact_prefix={out}/", str(corpus)]
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
