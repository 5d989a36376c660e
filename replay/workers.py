"""Forked worker processes that never outlive the run that started them.

A `concurrent.futures` process pool whose workers (forked, so they share the parent's
arrays) ask the kernel to kill them when the parent dies (`PR_SET_PDEATHSIG`, even on
SIGKILL), leave Ctrl-C to the parent, and are killed, not waited for, when the parent
leaves the pool on an exception (Ctrl-C, SIGTERM via the CLI, an error in one task).
The parent waits for its tasks with `completed`, which stays interruptible.
"""

from __future__ import annotations

import ctypes
import importlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from multiprocessing import get_context
from multiprocessing.process import BaseProcess

#: prctl option (include/uapi/linux/prctl.h): signal sent to this process when its
#: parent thread exits
PR_SET_PDEATHSIG = 1
#: Seconds between the waiting main thread's checks for a signal (`completed`).
WAKE_S = 0.2


def may_fork() -> bool:
    """Whether this process may fork a child that runs Python: it is single-threaded (a
    fork copies a lock another thread holds, held for ever in the child) and not a
    daemon (multiprocessing refuses a daemon's children)."""
    return threading.active_count() == 1 and not multiprocessing.current_process().daemon


def die_with_parent(parent: int) -> None:
    """Pool initializer: SIGKILL this worker when `parent` exits; ignore SIGINT and
    SIGTERM (the parent handles them and stops its workers)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pool's own cleanup remains
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


@contextmanager
def fork_pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of `jobs` forked workers tied to this process (see the module docstring).

    Leaving the `with` normally waits for the submitted tasks as ProcessPoolExecutor
    does; leaving it on an exception cancels what has not started and kills the workers.
    """
    pool = ProcessPoolExecutor(jobs, mp_context=get_context("fork"),
                               initializer=die_with_parent, initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        kill_workers(pool)
        raise
    pool.shutdown(wait=True)


def kill_workers(pool: ProcessPoolExecutor) -> None:
    """Stop `pool` at once: cancel queued tasks, SIGKILL and reap its worker processes."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        try:
            p.kill()
        except (OSError, ValueError):  # already gone or closed
            pass
    for p in procs:
        try:
            p.join(5)
        except (OSError, ValueError, AssertionError):
            pass


def _run_child(parent: int, target: Callable[..., object], args: tuple) -> None:
    die_with_parent(parent)
    target(*args)


@contextmanager
def forked_child(target: Callable[..., object], *args: object, name: str
                 ) -> Iterator[BaseProcess]:
    """`target(*args)` in a child forked now that dies with this process
    (`die_with_parent`): killed when the `with` ends on an exception (an error or a
    stop), waited for when it ends normally. Fork only where `may_fork()`."""
    proc = get_context("fork").Process(target=_run_child, args=(os.getpid(), target, args),
                                       name=name)
    proc.start()
    try:
        yield proc
    except BaseException:
        proc.kill()
        raise
    finally:
        proc.join()


def _import_all(modules: Sequence[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - it fails again, reported, where it is needed
            pass


@contextmanager
def importing_beside(modules: Sequence[str]) -> Iterator[None]:
    """Import `modules` in a thread while the `with` body waits for other processes (a
    pool's workers), so that a later step finds them imported; the thread is joined when
    the `with` ends. Start it only after the last fork of the `with` body: a fork would
    copy the import lock the thread may hold."""
    if not modules:
        yield
        return
    thread = threading.Thread(target=_import_all, args=(tuple(modules),),
                              name="replay-imports", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def completed(futures: Iterable[Future]) -> Iterator[Future]:
    """`futures` as they finish, like `as_completed`, but waking every WAKE_S seconds.

    CPython runs a signal's handler in the main thread only, when it next runs Python
    code: a signal taken by one of the pool's threads, or one arriving just before the
    main thread blocks on a lock, would leave a Ctrl-C unanswered while that thread
    waits without a timeout (seen under load: a SIGINT that never stopped the run).
    """
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=WAKE_S, return_when=FIRST_COMPLETED)
        yield from done


def result_of(future: Future):
    """`future.result()`, waiting as `completed` does, so that a stop signal is seen."""
    return next(completed([future])).result()
