"""The README's two set-up commands, in that order, leave a working `replay` script.

A regular install (command 1) runs the engine, whose numba functions cache their machine
code; then the editable install (command 2) replaces it. numba once wrote that cache into
site-packages, where pip's uninstall left it and turned `site-packages/replay` into a
namespace package that shadowed the editable source (`cannot import name '__version__'`).
The test installs a copy of the tree the same two ways into a fresh virtual environment
and runs the installed script from outside the tree.

Marked `install` (two pip installs and a first compile of the engine's numba functions:
65-90 s on the shared 2-core machine; `-m 'not install'` leaves it out). The
dependencies come from the running environment (a `.pth` file), so the test needs no
package index for them; replay itself is built and installed by pip as a user's would be.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES

pytestmark = pytest.mark.install


def _tracked_copy(dest: Path) -> Path:
    """The files a fresh clone would hold (tracked, plus new files not ignored)."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _venv(path: Path) -> Path:
    """A virtual environment whose dependencies are those of the running one."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    purelib = Path(subprocess.run(
        [str(path / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    ours = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (purelib / "running_env.pth").write_text("\n".join(sorted(ours)) + "\n")
    return purelib


def _run(venv: Path, *args: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _unrecorded(purelib: Path) -> list[str]:
    """Files under site-packages/replay that pip's RECORD does not list."""
    dist = next(purelib.glob("replay-*.dist-info"))
    recorded = {line.split(",")[0] for line in (dist / "RECORD").read_text().splitlines()}
    return sorted(str(p.relative_to(purelib)) for p in (purelib / "replay").rglob("*")
                  if p.is_file() and str(p.relative_to(purelib)) not in recorded)


def test_regular_then_editable_install_runs_from_outside(tmp_path, compiled_kernels):
    from ingest.cache import cache_dir

    tree = _tracked_copy(tmp_path / "clone")
    venv = tmp_path / "venv"
    purelib = _venv(venv)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    if compiled_kernels:  # the readers' kernels as already built (same sources)
        (cache / "kernels").symlink_to(cache_dir() / "kernels")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "NUMBA_CACHE_DIR", "VIRTUAL_ENV")}
    env["REPLAY_CACHE_DIR"] = str(cache)
    pip = ("python", "-m", "pip", "install", "-q", "--no-deps")

    _run(venv, *pip, str(tree), cwd=outside, env=env)  # command 1: `pip install .`
    dataset = outside / "thp.replay"
    _run(venv, "replay", "ingest", str(SAMPLES / "ftrace-thp.dat"), "-o", str(dataset),
         "-q", cwd=outside, env=env)
    _run(venv, "replay", "simulate", str(dataset), "--max-order", "10", "--search",
         "linear", "--policy", "free", "-q", cwd=outside, env=env)
    assert _unrecorded(purelib) == []  # numba cached nothing beside the installed code
    assert list((cache / "numba").rglob("*.nbi")), "numba's cache is not in REPLAY_CACHE_DIR"

    _run(venv, *pip, "-e", f"{tree}[test]", cwd=outside, env=env)  # command 2
    assert not (purelib / "replay").exists()
    from replay import __version__

    assert _run(venv, "replay", "--version", cwd=outside, env=env).strip() == \
        f"replay {__version__}"
    info = _run(venv, "replay", "info", str(dataset), cwd=outside, env=env)
    assert "mm_page_alloc" in info
    where = _run(venv, "python", "-c", "import replay; print(replay.__file__)",
                 cwd=outside, env=env)
    assert Path(where.strip()) == tree / "replay" / "__init__.py"
