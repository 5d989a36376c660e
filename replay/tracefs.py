"""The kernel's tracefs: finding (or mounting) it, and changing it only reversibly.

`replay record` never leaves tracing changed. Every write goes through `TracingState`,
which keeps the original content of each file the first time it is written and writes
them all back, last change first, in `restore()`. Captures run in a private tracing
instance (`instances/replay-<pid>`, Linux 3.10+) whose own buffer, events and options do
not disturb anybody using the top-level buffer; where instances are unavailable the top
level is used, with the same save/restore.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ingest.errors import TracingError

#: Where tracefs lives: its own mount (4.1+), or inside debugfs on older kernels.
TRACEFS_PATHS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))

#: The kernel's list of online CPUs (`0-3,8`).
CPU_ONLINE = Path("/sys/devices/system/cpu/online")

#: Prefix of the instances this tool creates; the suffix is the recording process id.
INSTANCE_PREFIX = "replay-"


def is_tracefs(path: Path) -> bool:
    """Whether `path` is a mounted tracefs (it holds `tracing_on` and `events/`)."""
    return (path / "tracing_on").is_file() and (path / "events").is_dir()


def find_tracefs(mount: bool = True) -> tuple[Path, bool]:
    """The tracefs root, and whether this call mounted it (then it must be unmounted)."""
    for path in TRACEFS_PATHS:
        if is_tracefs(path):
            return path, False
        if os.path.ismount(path) and not os.access(path, os.R_OK | os.X_OK):
            raise TracingError(f"not root: {path} is not accessible; "
                               "run replay record as root (sudo)")
    if not mount:
        raise TracingError(f"no tracefs: none mounted at {' or '.join(map(str, TRACEFS_PATHS))}")
    target = TRACEFS_PATHS[0]
    if os.geteuid() != 0:
        raise TracingError(
            f"not root: tracefs is not mounted at {target} and only root can mount it; "
            "run replay record as root (sudo)"
        )
    done = subprocess.run(["mount", "-t", "tracefs", "nodev", str(target)],
                          capture_output=True, text=True)
    if done.returncode != 0 or not is_tracefs(target):
        why = done.stderr.strip() or "mounted, but it holds no tracing_on"
        raise TracingError(
            f"no tracefs: mounting it at {target} failed ({why}); the kernel needs "
            "CONFIG_FTRACE and CONFIG_TRACING, or mount it with "
            f"`mount -t tracefs nodev {target}`"
        )
    return target, True


def unmount_tracefs(path: Path) -> None:
    """Undo `find_tracefs`'s mount."""
    subprocess.run(["umount", str(path)], capture_output=True, check=False)


def check_writable(root: Path) -> None:
    """Raise a TracingError saying what to do unless tracing can be controlled."""
    if not is_tracefs(root):
        raise TracingError(f"no tracefs: {root} holds no tracing_on and events/")
    if not os.access(root / "tracing_on", os.W_OK):
        raise TracingError(
            f"not root: {root}/tracing_on is not writable; run replay record as root (sudo)"
        )


def current_clock(text: str) -> str:
    """The selected clock of a `trace_clock` file (`[local] global ...` -> `local`)."""
    m = re.search(r"\[(\S+)\]", text)
    return m.group(1) if m else text.split()[0] if text.split() else ""


def restorable_value(rel: str, text: str) -> str:
    """What to write into tracefs file `rel` to bring back the content `text` read from it.

    Most files read back what was written (`0`, `1`, a number). The exceptions:
    `trace_clock` lists every clock with the current one in brackets; `buffer_size_kb`
    reads `7 (expanded: 1408)` before the buffer was first used (writing the expanded size
    is the closest restore: the buffer cannot be shrunk back to unexpanded); an event's
    `enable` reads `0*`/`1*` while a trigger holds it in soft mode.
    """
    name = rel.rsplit("/", 1)[-1]
    if name == "trace_clock":
        return current_clock(text)
    if name == "buffer_size_kb":
        m = re.search(r"expanded:\s*(\d+)", text)
        if m:
            return m.group(1)
    return text.strip().split()[0].rstrip("*") if text.strip() else ""


@dataclass
class TracingState:
    """Writes tracefs files, remembering each one's original value to restore it later.

    `dir` is the directory writes are relative to (the tracefs root or an instance).
    """

    dir: Path
    #: relative path -> original value, in first-write order
    saved: dict[str, str] = field(default_factory=dict)

    def read(self, rel: str) -> str:
        """The content of `rel`."""
        return (self.dir / rel).read_text()

    def write(self, rel: str, value: str) -> None:
        """Write `value` into `rel`, keeping its original value the first time."""
        path = self.dir / rel
        if rel not in self.saved:
            try:
                self.saved[rel] = restorable_value(rel, path.read_text())
            except OSError as e:
                raise TracingError(f"{path}: cannot be read: {e.strerror}") from None
        _write(path, value)

    def restore(self) -> list[str]:
        """Write every saved value back, last change first; return what could not be."""
        failed = []
        for rel, value in reversed(list(self.saved.items())):
            try:
                _write(self.dir / rel, value)
            except TracingError as e:
                failed.append(str(e))
        self.saved.clear()
        return failed


def _write(path: Path, value: str) -> None:
    # One write() call, as the kernel parses each write on its own.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    except OSError as e:
        raise TracingError(f"{path}: cannot be opened for writing: {e.strerror}") from None
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise TracingError(f"{path}: writing {value!r} failed: {e.strerror}") from None
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_instances(root: Path) -> list[str]:
    """Remove instances left by `replay record` processes that died (e.g. SIGKILL)."""
    removed = []
    instances = root / "instances"
    if not instances.is_dir():
        return removed
    for d in instances.iterdir():
        suffix = d.name[len(INSTANCE_PREFIX):]
        if d.name.startswith(INSTANCE_PREFIX) and suffix.isdigit() and not _pid_alive(int(suffix)):
            try:
                d.rmdir()
                removed.append(d.name)
            except OSError:
                pass
    return removed


def create_instance(root: Path, name: str) -> Path | None:
    """Create tracing instance `name`; None when the kernel has no instances (before 3.10)."""
    instances = root / "instances"
    if not instances.is_dir():
        return None
    path = instances / name
    try:
        path.mkdir()
    except FileExistsError:
        raise TracingError(f"{path}: tracing instance already exists") from None
    except OSError as e:
        if e.errno in (errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES):
            return None
        raise TracingError(f"{path}: cannot create a tracing instance: {e.strerror}") from None
    return path


def remove_instance(path: Path) -> str | None:
    """Remove a tracing instance; the error text when it could not be removed."""
    try:
        path.rmdir()
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"{path}: cannot remove tracing instance: {e.strerror}"
    return None


def online_cpus(root: Path) -> list[int]:
    """CPUs with a per-CPU buffer that are online (all with a buffer when unknown)."""
    have = sorted(int(d.name[3:]) for d in (root / "per_cpu").glob("cpu[0-9]*"))
    try:
        text = CPU_ONLINE.read_text().strip()
    except OSError:
        return have
    online: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        online.update(range(int(lo), int(hi or lo) + 1))
    return [c for c in have if c in online]


def per_cpu_stats(dir: Path, cpu: int) -> dict[str, int]:
    """The integer counters of `per_cpu/cpuN/stats` (entries, overrun, dropped events...)."""
    stats = {}
    try:
        text = (dir / "per_cpu" / f"cpu{cpu}" / "stats").read_text()
    except OSError:
        return stats
    for line in text.splitlines():
        key, _, value = line.partition(":")
        value = value.strip()
        if value.isdigit():
            stats[key.strip()] = int(value)
    return stats


def saved_cmdlines(root: Path) -> dict[int, str]:
    """The kernel's pid -> comm cache (`saved_cmdlines`: lines `pid comm`)."""
    comms = {}
    try:
        text = (root / "saved_cmdlines").read_text(errors="replace")
    except OSError:
        return comms
    for line in text.splitlines():
        pid, _, comm = line.partition(" ")
        if pid.isdigit():
            comms[int(pid)] = comm
    return comms
