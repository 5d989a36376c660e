"""Where replay keeps what it compiles: one cache directory per user, never the install.

numba's `cache=True` writes its files beside each function's source, in `__pycache__`.
For an installed package that is site-packages: pip does not know those files, so when
the install is replaced (say by an editable one) they stay behind and turn
`site-packages/replay` into a namespace package that shadows the real one. Every numba
cache therefore goes under the replay cache directory, set here before numba is imported:
`ingest` runs `use_for_numba()` when it is imported, and `replay` imports `ingest` first.

numba checks a cached function against its own source file only: a function whose file
did not change keeps machine code that inlined an older version of a helper from another
module (a crash, not an error). So the numba cache is keyed by a hash of every source of
the packages (`source_key`): any change to any of them starts a fresh cache.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

#: the variable that moves the whole cache (compiled kernels and numba's cache)
CACHE_ENV = "REPLAY_CACHE_DIR"


def cache_dir() -> Path:
    """`$REPLAY_CACHE_DIR`, else `$XDG_CACHE_HOME/replay`, else `~/.cache/replay`."""
    own = os.environ.get(CACHE_ENV)
    if own:
        return Path(own)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "replay"


#: NUMBA_CACHE_DIR as the user gave it (read before `use_for_numba` sets it)
_USER_NUMBA_DIR = os.environ.get("NUMBA_CACHE_DIR")


def numba_cache_dir() -> Path:
    """Where numba's JIT caches go: the user's NUMBA_CACHE_DIR, else under `cache_dir()`."""
    return Path(_USER_NUMBA_DIR) if _USER_NUMBA_DIR else cache_dir() / "numba"


def source_key(*roots: Path) -> str:
    """A short hash of every Python source under `roots` (names and contents)."""
    h = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root.parent)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def use_for_numba(key: str = "") -> None:
    """Point numba's cache at `numba_cache_dir()/key`; also when numba is already
    imported (it reads the variable once, at import)."""
    where = str(numba_cache_dir() / key)
    os.environ["NUMBA_CACHE_DIR"] = where
    config = sys.modules.get("numba.core.config")
    if config is not None:
        config.CACHE_DIR = where
