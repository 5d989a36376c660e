"""The fleet's tasks: what a Dask worker runs, given paths on storage it shares with the
parent (the datasets are read and written in place, never shipped).

A replay task builds its dataset's context (stream, snapshots, world) once per worker
process and keeps it for the dataset's next groups. Every task returns a `TaskFailure`
for a `ReplayError` (bad input, unwritable output) instead of raising: such failures are
final, never retried, and their one-line message names the trace.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ingest.errors import ReplayError
from replay.dataset import META_FILE
from replay.engine.context import Context, prepare
from replay.engine.options import SimOptions
from replay.engine.simulate import SweepSummary, finish_sweep, observed_end
from replay.engine.sweep import Config, Group, RunResult, groups, replay_group
from replay.fleet.cluster import worker_name

#: contexts kept per worker process (each holds a whole stream in memory)
CONTEXTS_KEPT = 2


@dataclass(frozen=True)
class TaskFailure:
    """A task's final failure: the one-line message, and the worker it ran on."""

    message: str
    worker: str


@dataclass
class Plan:
    """A dataset's configurations (baseline first) and the groups that replay them."""

    configs: list[Config]
    groups: list[Group]
    worker: str


@dataclass
class GroupDone:
    """One group's results and the worker that replayed it."""

    results: list[RunResult]
    worker: str


@dataclass
class SweepDone:
    """A finished sweep (DATASET/sim written) and every worker that took part."""

    summary: SweepSummary
    workers: set[str]


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, returning a TaskFailure for a ReplayError (its classes do not all pickle)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ReplayError as e:
            return TaskFailure(str(e), worker_name())

    return run


@functools.lru_cache(maxsize=CONTEXTS_KEPT)
def _context(dataset: str, options: SimOptions, stamp: int) -> Context:
    return prepare(Path(dataset), options)


def context(dataset: str, options: SimOptions) -> Context:
    """The dataset's context, from this process's cache unless the dataset changed since
    (re-ingested: its meta.json is new)."""
    try:
        stamp = (Path(dataset) / META_FILE).stat().st_mtime_ns
    except OSError:
        stamp = 0  # prepare names the missing dataset
    return _context(dataset, options, stamp)


@guarded
def dataset_task(source: str, force: bool) -> str:
    """The dataset of `source` (a dataset, or a trace ingested unless already)."""
    from replay.report.make import dataset_for

    return str(dataset_for(Path(source), force, quiet=True))


@guarded
def ingest_task(source: str, out: str | None, kwargs: dict[str, Any]) -> str:
    """`replay ingest` of one trace."""
    from replay.ingestion import ingest

    return str(ingest(Path(source), Path(out) if out else None, quiet=True, **kwargs))


@guarded
def plan_task(dataset: str, options: SimOptions) -> Plan:
    """The dataset's configurations and their groups."""
    ctx = context(dataset, options)
    configs = options.configurations(ctx.kernel_max_order)
    return Plan(configs, groups(ctx, configs), worker_name())


@guarded
def group_task(dataset: str, options: SimOptions, group: Group) -> GroupDone:
    """Replay one group of the dataset's sweep."""
    return GroupDone(replay_group(context(dataset, options), group), worker_name())


@guarded
def finish_task(dataset: str, options: SimOptions, configs: list[Config],
                *done: GroupDone | TaskFailure) -> SweepDone | TaskFailure:
    """Assemble the groups' results as `run_sweep` does and write DATASET/sim."""
    failed = next((d for d in done if isinstance(d, TaskFailure)), None)
    if failed is not None:
        return failed
    t0 = time.perf_counter()
    ctx = context(dataset, options)
    by_cfg = {r.config: r for d in done for r in d.results}
    summary = finish_sweep(Path(dataset), ctx, [by_cfg[c] for c in configs],
                           observed_end(ctx), t0)
    workers = {d.worker for d in done} | {worker_name()}
    return SweepDone(replace(summary, elapsed=0.0), workers)
