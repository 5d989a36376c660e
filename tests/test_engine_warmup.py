"""The engine's announced one-time compile compiles what a real sweep runs."""

from __future__ import annotations

from replay.engine.observed import replay_observed
from replay.engine.options import SimOptions
from replay.engine.simulate import run_sweep
from replay.engine.simulated import replay_simulated
from replay.engine.warmup import compile_engine
from tests.conftest import SAMPLES


def test_warm_up_compiles_the_signatures_a_real_sweep_uses(tmp_path):
    """After `compile_engine`, a sweep over a real trace adds no compiled signature (it
    would compile again, silently, after the announced compile)."""
    from replay.ingestion import ingest

    options = SimOptions(max_orders=(5,), searches=("linear",), policies=("free",), jobs=1,
                         snapshots=str(SAMPLES / "ftrace-thp.snapshots"))
    compile_engine(options)
    before = (set(replay_simulated.signatures), set(replay_observed.signatures))
    assert before[0] and before[1]
    ds = ingest(SAMPLES / "ftrace-thp.trace.txt.xz", tmp_path / "thp.replay", quiet=True)
    run_sweep(ds, options, quiet=True)
    assert (set(replay_simulated.signatures), set(replay_observed.signatures)) == before
