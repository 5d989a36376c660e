"""The engine's one-time compile, announced. numba compiles the replays on their first
use by a version of replay (tens of seconds, then cached under the replay cache
directory, `ingest/cache.py`); a sweep that would compile first says so, on a terminal
or not, and compiles on a three-event stream so that the wait is not mistaken for the
replay."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numba
import numpy as np

from replay.engine.context import build_context
from replay.engine.options import SimOptions
from replay.engine.stream import ALLOC, DRAIN, RAW_FREE, TAKE, build_stream
from replay.engine.sweep import Group, replay_group
from replay.engine.world import Snapshots
from replay.kernel import migratetypes, pagestate
from replay.kernel.zones import ZONE_NORMAL
from replay.progress import note
from replay.workers import forked_child, may_fork

#: The file `compile_engine` leaves in numba's cache (one per version of the sources,
#: `ingest/cache.py`) once every replay a sweep runs is compiled there. Cache files alone
#: do not say it: a process that ran only some configurations (a benchmark's, a test's)
#: leaves some signatures uncompiled, and a sweep would then compile them unannounced.
ENGINE_MARK = "engine-compiled"


def _mark() -> Path | None:
    """Where `ENGINE_MARK` goes: numba's cache directory of these sources, if there is one."""
    return Path(numba.config.CACHE_DIR) / ENGINE_MARK if numba.config.CACHE_DIR else None


def engine_cached() -> bool:
    """Whether `compile_engine` has filled numba's cache for this version of the sources."""
    mark = _mark()
    return mark is not None and mark.exists()


def compile_engine(options: SimOptions) -> None:
    """Compile both replays by running them on a three-event stream (a refill, an
    allocation, a drain) with `options`' types."""
    one = lambda *x: np.array(x, np.int64)
    stream = build_stream(
        np.array([TAKE, ALLOC, RAW_FREE, DRAIN], np.int8), one(0, 0, 0, 0), one(0, 0, 0, 0),
        one(*[migratetypes.MOVABLE] * 4), one(*[ZONE_NORMAL] * 4),
        np.full(4, pagestate.MOVABLE, np.uint8), np.zeros(4, bool), one(0, 1, 2, 3),
        one(0, 1, 2, 3), None)
    ctx = build_context(stream, Snapshots(None), options)
    top = ctx.kernel_max_order
    replay_group(ctx, Group("simulated", top, "none", ("none",), False))
    replay_group(ctx, Group("observed", top, "free", ("linear",), True))
    mark = _mark()
    if mark is not None:
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.touch()


def announce_and_compile(options: SimOptions, quiet: bool) -> None:
    """Compile the engine when it is not compiled yet, saying so and how long it took;
    else load it from numba's cache (the same three-event replays, a few hundredths of a
    second). Called before the sweep's pool forks, so that its workers inherit the loaded
    replays instead of each loading them on its first replay (docs/speed.md, fifth
    step)."""
    announce = not quiet and not engine_cached()
    start = time.monotonic()
    if announce:
        note("replay: compiling the replay engine, once per version of replay (about 20 s)")
    compile_engine(options)
    if announce:
        note(f"replay: compiled the replay engine in {time.monotonic() - start:.0f} s")


@contextmanager
def compiling_beside(options: SimOptions, quiet: bool) -> Iterator[None]:
    """Compile the engine in a forked child while the `with` body runs (`replay report`'s
    ingest, whose readers compile in this process at the same time, on the other core),
    when it is not compiled yet and this process may fork; leaving the `with` waits for
    the child (killed on an error or a stop). A child that failed leaves the compile to
    `announce_and_compile`, in this process."""
    if engine_cached() or not may_fork():
        yield
        return
    start = time.monotonic()
    if not quiet:
        note("replay: compiling the replay engine beside the ingest, once per version of "
             "replay (about 20 s)")
    with forked_child(compile_engine, options, name="replay-compile") as proc:
        yield
    if not quiet and proc.exitcode == 0:
        note(f"replay: compiled the replay engine in {time.monotonic() - start:.0f} s")
