"""Ctrl-C, SIGTERM and SIGHUP as KeyboardInterrupt, and a record that one arrived.

A KeyboardInterrupt raised while Python code runs on behalf of an import or a C
extension (pandas imported lazily by pyarrow, say) can be swallowed there, or leave a
half-imported module behind, and the run would go on as if never interrupted; raised
inside llvmlite's callbacks from LLVM while numba compiles, it is swallowed by ctypes
and the compile fails later with a RuntimeError instead. So the handler records the
signal and, inside an import or such a callback, raises only once it is done (SIGALRM
retries); writers call `check()` right before they put an output in place, and
the CLI exits as interrupted whenever one arrived.
"""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Any

#: the signals that stop a run
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_received: int | None = None


#: how soon a signal that arrived during an import is raised again
_RETRY_SECONDS = 0.05
_IMPORTING = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")
#: llvmlite's modules: LLVM calls back into them through ctypes while numba compiles
_LLVMLITE = os.sep + "llvmlite" + os.sep


def _deferring(frame: FrameType | None) -> bool:
    """Whether `frame` runs inside an import or an llvmlite callback."""
    while frame is not None:
        name = frame.f_code.co_filename
        if name in _IMPORTING or _LLVMLITE in name:
            return True
        frame = frame.f_back
    return False


def _handler(signum: int, frame: FrameType | None) -> None:
    """Record the signal and raise KeyboardInterrupt, except inside an import (a module
    interrupted half-way stays broken in sys.modules: pandas, imported lazily by pyarrow,
    then fails with AttributeError) or an llvmlite callback: there, try again shortly."""
    global _received
    if signum != signal.SIGALRM:
        _received = signum
    if _received is None:
        return
    if _deferring(frame):
        signal.setitimer(signal.ITIMER_REAL, _RETRY_SECONDS)
        return
    raise KeyboardInterrupt


def install() -> dict[int, Any]:
    """Handle SIGNALS (main thread only); returns the previous handlers for `restore`."""
    global _received
    _received = None
    return {s: signal.signal(s, _handler) for s in (*SIGNALS, signal.SIGALRM)}


def restore(previous: dict[int, Any]) -> None:
    """Put back the handlers `install` replaced, and forget any signal received."""
    global _received
    signal.setitimer(signal.ITIMER_REAL, 0)
    _received = None
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def received() -> int | None:
    """The signal that arrived since `install`, if any."""
    return _received


def check() -> None:
    """Raise KeyboardInterrupt if a signal arrived, even one whose exception was lost."""
    if _received is not None:
        raise KeyboardInterrupt
