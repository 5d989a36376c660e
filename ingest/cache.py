"""Where replay keeps what it compiles: one cache directory per user, never the install.

numba's `cache=True` writes its files beside each function's source, in `__pycache__`.
For an installed package that is site-packages: pip does not know those files, so when
the install is replaced (say by an editable one) they stay behind and turn
`site-packages/replay` into a namespace package that shadows the real one. Every numba
cache therefore goes under the replay cache directory, set here before numba is imported:
`ingest` runs `use_for_numba()` when it is imported, and `replay` imports `ingest` first.
"""

from __future__ import annotations

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


def numba_cache_dir() -> Path:
    """Where numba's JIT caches go (`NUMBA_CACHE_DIR`, unless the user set it)."""
    given = os.environ.get("NUMBA_CACHE_DIR")
    return Path(given) if given else cache_dir() / "numba"


def use_for_numba() -> None:
    """Point numba's cache at `numba_cache_dir()`; also when numba is already imported
    (it reads the variable once, at import)."""
    where = str(numba_cache_dir())
    os.environ["NUMBA_CACHE_DIR"] = where
    config = sys.modules.get("numba.core.config")
    if config is not None:
        config.CACHE_DIR = where
