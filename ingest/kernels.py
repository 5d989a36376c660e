"""The readers' compiled loops, built once ahead of time so that a run starts fast.

A numba function costs every process about 0.8 s before its first call, even when its
machine code is cached: importing numba, setting up its CPU target, loading each
function. That is more than the whole work of ingesting a 300K-sample perf.data. So the
readers declare their loops here instead of with `numba.njit`:

    @kernel("u1_ro, i8[::1], i8[::1], b1")  # argument types; called from Python
    def scan(buf, starts, ends, big): ...

    @helper(inline="always")               # called only from kernels
    def _u32(buf, i, big): ...

The first run compiles every kernel of `MODULES` with numba's ahead-of-time compiler
(`numba.pycc`) into one extension module in the replay cache directory
(`ingest.cache.cache_dir()`), saying so on stderr, a line per phase; it is named by a hash
of the reader sources and of the Python, numpy and numba installation; later runs import
that module and never import numba. Where it cannot be built (no C compiler, no writable
cache) or `REPLAY_JIT=1` is set, the same functions run under numba's JIT (cached), as
they did before. Signatures use numba's type names (`i8[::1]` is a C-contiguous int64 1-D
array, `i8[:]` any 1-D one, `i8[:, ::1]` 2-D) plus `u1_ro`, a read-only contiguous uint8
array (an mmap'd file).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ingest.cache import cache_dir

#: the modules that declare kernels; all of them are compiled into one extension module
MODULES = (
    "ingest.cpu_streams",
    "ingest.ftrace_entry",
    "ingest.perf_stacks",
    "ingest.perf_threads",
    "ingest.perf_walk",
    "ingest.ringbuffer",
    "ingest.text_scan",
    "ingest.text_values",
)
_EXTENSION = "replay_kernels"


class Compiled:
    """A function declared with `kernel` or `helper`; calls go to its compiled form."""

    def __init__(self, fn: Callable[..., Any], signature: str | None,
                 options: dict[str, Any]) -> None:
        functools.update_wrapper(self, fn)
        self.py_func = fn
        self.signature = signature
        self.options = {"cache": True, **options}
        self.export_name = f"{fn.__module__.rsplit('.', 1)[-1]}__{fn.__name__}"
        self._impl: Callable[..., Any] | None = None

    def __call__(self, *args: Any) -> Any:
        impl = self._impl
        if impl is None:
            impl = self._impl = _implementation(self)
        return impl(*args)


def kernel(signature: str, **options: Any) -> Callable[[Callable[..., Any]], Compiled]:
    """Declare a loop called from Python; `signature` lists its argument types."""
    return lambda fn: Compiled(fn, signature, options)


def helper(**options: Any) -> Callable[[Callable[..., Any]], Compiled]:
    """Declare a function called only from kernels (numba.njit options allowed)."""
    return lambda fn: Compiled(fn, None, options)


def load() -> bool:
    """Make sure the compiled module is built and loaded; False when the JIT serves."""
    return _extension() is not None


def _implementation(c: Compiled) -> Callable[..., Any]:
    ext = _extension() if c.signature is not None else None
    if ext is not None:
        return getattr(ext, c.export_name)
    return _dispatchers()[c.export_name]


@functools.cache
def _declared() -> list[tuple[ModuleType, str, Compiled]]:
    """(module, name, declaration) for every module-level name of `MODULES` bound to a
    declared function (kernels also import each other's helpers)."""
    found = []
    for name in MODULES:
        module = importlib.import_module(name)
        found += [(module, attr, value) for attr, value in vars(module).items()
                  if isinstance(value, Compiled)]
    return found


def _bind_jit() -> dict[str, Any]:
    """Bind numba JIT dispatchers in place of the declarations in their modules, so that
    kernels compiled by numba call each other compiled; returns them by export name."""
    import numba

    made: dict[str, Any] = {}
    for module, attr, c in _declared():
        if c.export_name not in made:
            made[c.export_name] = numba.njit(**c.options)(c.py_func)
        setattr(module, attr, made[c.export_name])
    return made


@functools.cache
def _dispatchers() -> dict[str, Any]:
    return _bind_jit()


def _cache_dir() -> Path:
    return cache_dir() / "kernels"


def _key() -> str:
    """Hash of what the compiled module depends on: the reader sources and the schema
    (constants the kernels use), the host CPU (the code uses its instruction set), the
    Python, numpy and numba installations (by version and install time)."""
    h = hashlib.sha256()
    here = Path(__file__).parent
    for src in sorted(here.glob("*.py")):
        h.update(src.name.encode())
        h.update(src.read_bytes())
    h.update(sys.version.encode())
    h.update(_host_cpu().encode())
    h.update(np.__version__.encode())
    for dep in ("numba", "llvmlite"):
        spec = importlib.util.find_spec(dep)
        origin = spec.origin if spec is not None and spec.origin else "absent"
        mtime = os.stat(origin).st_mtime_ns if spec is not None and spec.origin else 0
        h.update(f"{dep}:{origin}:{mtime}".encode())
    return h.hexdigest()[:20]


def _host_cpu() -> str:
    """The CPU model and feature flags (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags", "Features"))]
    except OSError:
        lines = []
    return "".join(sorted(set(lines))) or os.uname().machine


@functools.cache
def _extension() -> ModuleType | None:
    """The compiled module, built on first use; None when the JIT must serve."""
    if os.environ.get("REPLAY_JIT"):
        return None
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    root = _cache_dir()
    key = _key()
    path = root / key / f"{_EXTENSION}{suffix}"
    failed = root / f"{key}.failed"
    if not path.exists() and not failed.exists():
        try:
            root.mkdir(parents=True, exist_ok=True)
            with open(root / f"{key}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it
                if not path.exists():
                    _build(root, key)
        except Exception as e:  # noqa: BLE001 - any failure means: use the JIT
            why = f"{type(e).__name__}: {e}".splitlines()[0]
            try:
                failed.write_text(why + "\n")
            except OSError:
                pass
            _say(f"warning: could not build the compiled kernels ({why}); using numba's JIT")
            return None
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(_EXTENSION, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(root: Path, key: str) -> None:
    """Compile every kernel into root/key/ (atomically: a temporary directory renamed),
    with a line on stderr per phase, terminal or not: the build takes about 20 s."""
    start = time.monotonic()
    _say(f"compiling the readers' kernels, once, into {root / key} (about 20 s)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba.pycc is "pending deprecation"
        from numba.core import types
        from numba.pycc import CC

        names = {**vars(types), "u1_ro": types.Array(types.uint8, 1, "C", readonly=True)}
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=root))
        try:
            _bind_jit()  # pycc resolves the helpers a kernel calls through its module
            cc = CC(_EXTENSION)
            cc.output_dir = str(tmp)
            cc.target_cpu = "host"  # the module is built for, and cached on, this machine
            exported = {c.export_name: c for _, _, c in _declared() if c.signature}
            for c in exported.values():
                args = eval(f"({c.signature},)", {}, names)  # noqa: S307 - our own text
                cc.export(c.export_name, args)(c.py_func)
            _say(f"compiling {len(exported)} kernels to machine code "
                 f"({time.monotonic() - start:.0f} s so far)")
            cc.compile()
            os.rename(tmp, root / key)
        finally:
            for module, attr, c in _declared():  # Python callers go back to the declarations
                setattr(module, attr, c)
            shutil.rmtree(tmp, ignore_errors=True)
    _say(f"compiled the readers' kernels in {time.monotonic() - start:.0f} s")


def _say(message: str) -> None:
    print(f"replay: {message}", file=sys.stderr, flush=True)
