"""Outputs that appear whole or not at all, and never twice at once.

Every output is first written to a hidden sibling `.NAME.tmp-PID` and renamed into place
when complete. A run killed before that (SIGKILL, power loss) leaves its sibling behind;
`remove_stale` deletes the siblings whose process is gone, and every writer calls it
before writing, so the next run into the same place cleans up. `OutputLock` makes a
second writer into the same output fail at once instead of silently replacing the first.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from ingest.errors import OutputError
from replay import signals

#: the hidden siblings of an output, by kind: a temporary being written, an old output
#: being replaced, the lock of its writer
TMP, OLD = "tmp", "old"


def sibling(out: Path, kind: str, pid: int | None = None) -> Path:
    """The hidden sibling `.NAME.KIND-PID` of `out` (this process's by default)."""
    return out.with_name(f".{out.name}.{kind}-{os.getpid() if pid is None else pid}")


def lock_path(out: Path) -> Path:
    """The lock file of `out`'s writer."""
    return out.with_name(f".{out.name}.lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(out: Path) -> list[Path]:
    """Remove the `.NAME.tmp-PID` / `.NAME.old-PID` siblings of `out` left by processes
    that no longer exist; returns what was removed. A sibling whose PID is alive (this
    process, or a writer still running) is left alone."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(?:{TMP}|{OLD})-(\d+)")
    removed = []
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = pattern.fullmatch(p.name)
        if m is None or _alive(int(m.group(1))):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def cannot_write(path: Path | str, e: OSError) -> OutputError:
    """An OSError while writing `path` as a one-line OutputError (`e.filename` may be
    None, and pyarrow's errors carry errno without strerror)."""
    why = os.strerror(e.errno) if e.errno else (str(e).strip().splitlines() or ["error"])[0]
    return OutputError(f"{path}: cannot write: {why}")


class OutputLock:
    """An exclusive lock on writing `out`, held from before the first byte is written
    until the output is in place; a second writer gets OutputError at once.

    flock on `.NAME.lock`, which the holder removes on release; a writer that locked a
    file already removed (it opened it before the holder released) tries again.
    """

    def __init__(self, out: Path) -> None:
        self.path = lock_path(out)
        self.out = out
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise cannot_write(self.out.parent, e) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    who = f" (pid {holder})" if holder.isdigit() else ""
                    raise OutputError(f"{self.out}: another replay process{who} is writing "
                                      "it; try again when it is done") from None
                raise cannot_write(self.path, e) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed it between our open and flock
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def same_or_nested(out: Path, inputs: Sequence[Path]) -> Path | None:
    """The input that `out` is, holds or lies in (replacing `out` would destroy it)."""
    o = out.resolve()
    for path in inputs:
        p = Path(path).resolve()
        if o == p or o in p.parents or (p.is_dir() and p in o.parents):
            return Path(path)
    return None


def write_files(paths: Sequence[Path], texts: Sequence[str]) -> None:
    """Write every file under its temporary name, then rename them all into place; on
    any failure nothing is left but what was there before."""
    for p in paths:
        remove_stale(p)
    tmps = [sibling(p, TMP) for p in paths]
    current = paths[0]
    try:
        for tmp, p, text in zip(tmps, paths, texts):
            current = p
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
        signals.check()  # a Ctrl-C whose KeyboardInterrupt was lost: nothing in place
        for tmp, p in zip(tmps, paths):
            current = p
            tmp.replace(p)
    except OSError as e:
        raise cannot_write(current, e) from None
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
