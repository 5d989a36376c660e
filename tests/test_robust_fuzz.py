"""A short coverage-guided fuzzing run of every reader (tests/fuzz/, docs/fuzzing.md):
a few seconds each, so a change that makes a reader crash on bad input shows here; the
long campaign is tests/fuzz/campaign.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.fuzz.targets import TARGETS

pytest.importorskip("atheris")

#: seconds of fuzzing per target (after its seeds), and at most this many inputs
SECONDS = 2
RUNS = 2000


@pytest.mark.parametrize("target", list(TARGETS))
def test_short_fuzzing_run(target, tmp_path):
    r = subprocess.run([sys.executable, "-m", "tests.fuzz.fuzz", target, "--out",
                        str(tmp_path), f"-runs={RUNS}", f"-max_total_time={SECONDS}",
                        "-timeout=60", "-rss_limit_mb=2048", "-max_len=65536"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    crashes = tmp_path / "crashes.txt"
    assert not crashes.exists(), crashes.read_text()[:4000]
    assert r.returncode == 0, r.stderr[-4000:]
    runs = int((tmp_path / "runs").read_text())
    seeds = len(TARGETS[target].seeds())
    assert runs > seeds  # the seeds, and mutations of them
