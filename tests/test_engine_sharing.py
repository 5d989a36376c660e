"""Sharing replays between configurations changes no output (sweep.chains, sweep.copied).

The default sweep on a real trace, once with configurations that cannot differ sharing a
replay and once with every configuration replayed on its own: requests, runs (but for
elapsed_s), series and fidelity must be equal, and the shared sweep must have run fewer
replays.
"""

from __future__ import annotations

import pytest

from replay.engine.context import prepare
from replay.engine.observed import OUT_FAILED
from replay.engine.options import SimOptions
from replay.engine.simulate import measure_fidelity, observed_end
from replay.engine.sweep import run_configs
from replay.engine.tables import output_tables
from replay.progress import progress_listener
from tests.conftest import SAMPLES

TRACE = SAMPLES / "ftrace-thp.dat"
SNAPSHOTS = SAMPLES / "ftrace-thp.snapshots"

pytestmark = pytest.mark.skipif(not TRACE.exists(), reason=f"{TRACE} not present")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from replay.ingestion import ingest

    return ingest(TRACE, tmp_path_factory.mktemp("sharing") / "thp.replay", quiet=True)


def _sweep(dataset, share: bool, **opts):
    options = SimOptions(snapshots=str(SNAPSHOTS), series_samples=16, jobs=2, **opts)
    ctx = prepare(dataset, options)
    end_observed, bad = observed_end(ctx)
    seen: list[tuple[int, int]] = []
    with progress_listener(lambda d, done, total: seen.append((done, total))):
        results = run_configs(ctx, options.configurations(ctx.kernel_max_order), quiet=True,
                              share=share)
    # the bar counts every replay group, shared or not, up to its total
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == seen[-1][1] > 1
    fid = measure_fidelity(ctx, results[0], end_observed)
    tables = output_tables(dataset, ctx, results, fid, bad)
    tables["runs"] = tables["runs"].drop_columns(["elapsed_s"])
    return tables, fid.as_dict(), results


@pytest.mark.parametrize("opts", [{}, {"max_orders": (2, 9), "align": 384, "offset": 128}],
                         ids=["default", "cut-blocks"])
def test_shared_sweep_equals_unshared(dataset, opts):
    shared, fid_shared, res_shared = _sweep(dataset, True, **opts)
    alone, fid_alone, res_alone = _sweep(dataset, False, **opts)
    assert fid_shared == fid_alone
    for name in ("requests", "runs", "series"):
        assert shared[name].equals(alone[name]), name
    assert not any(r.shared_from for r in res_alone)
    copies = [r for r in res_shared if r.shared_from]
    assert copies and len(copies) < len(res_shared) - 1
    # the larger policy copies a `free` replay only where `free` never failed
    for r in copies:
        src = next(x for x in res_shared if x.config == r.shared_from)
        assert not (src.out == OUT_FAILED).any()
