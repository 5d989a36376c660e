"""Running a fleet's ingests and sweeps: on a Dask cluster, or here.

On a cluster every step is a task (`tasks`): a trace's ingest, its sweep's plan, each
configuration group's replay (longest first, as the local pool orders them), and the
write of DATASET/sim, which takes the groups' results worker to worker. The parent only
schedules and counts. Here (no scheduler), the traces run one after another, each sweep
over the local process pool (`-j`), as `replay simulate` runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.errors import InputError, ReplayError
from replay.engine.options import SimOptions
from replay.engine.simulate import SweepSummary
from replay.fleet.cluster import LOCAL
from replay.fleet.progress import fleet_progress
from replay.fleet.tasks import (
    Plan,
    SweepDone,
    TaskFailure,
    finish_task,
    group_task,
    plan_task,
)

if TYPE_CHECKING:
    from distributed import Client, Future

#: Dask priorities: a later phase first, so finished traces free their memory early
PRIORITY = {"ingest": 0, "plan": 10, "replay": 20, "write": 30}


@dataclass
class TraceRun:
    """One input of the fleet and what became of it."""

    label: str  # its name in the report's `trace` column
    source: Path
    dataset: Path | None = None
    error: str | None = None
    summary: SweepSummary | None = None
    workers: set[str] = field(default_factory=set)

    def fail(self, message: str) -> None:
        """Record the first failure; the trace takes no further step."""
        if self.error is None:
            self.error = message


@dataclass(frozen=True)
class Steps:
    """What to do with each input."""

    #: how to turn an input into its dataset: (task, extra arguments); None: it is one
    make_dataset: tuple[Callable[..., Any], tuple[Any, ...]] | None
    #: the sweep's options; None: no sweep
    sweep: SimOptions | None = None
    #: whether a dataset's sim/ already holds this sweep (then it is kept)
    current: Callable[[Path], bool] = lambda dataset: False


def labels(sources: list[Path]) -> list[str]:
    """The inputs' names in the report: file names, numbered where they repeat."""
    out: list[str] = []
    for s in sources:
        name, k = s.name, 2
        while name in out:
            name, k = f"{s.name} ({k})", k + 1
        out.append(name)
    return out


def trace_runs(sources: list[Path]) -> list[TraceRun]:
    """One run per input, its path absolute (workers see it from their own directory).
    An input given twice is refused: its two runs would write one dataset at once."""
    paths = [Path(s).absolute() for s in sources]
    seen: set[Path] = set()
    for p in paths:
        if p.resolve() in seen:
            raise InputError(p, "given twice")
        seen.add(p.resolve())
    return [TraceRun(label, p) for label, p in zip(labels(paths), paths)]


def _result(f: Future) -> Any:
    """A finished task's value; an exception (a bug, a worker lost too often) as a
    TaskFailure naming its kind."""
    if f.status == "error":
        e = f.exception()
        return TaskFailure(f"{type(e).__name__}: {e}", LOCAL)
    return f.result()


def run_cluster(client: Client, runs: list[TraceRun], steps: Steps,
                quiet: bool = False) -> list[TraceRun]:
    """Every input's steps as tasks on `client`'s cluster; failures recorded per trace."""
    from distributed import as_completed

    pending = as_completed(loop=client.loop)
    what: dict[Future, tuple[str, TraceRun]] = {}

    def submit(phase: str, run: TraceRun, fn: Callable[..., Any], *args: Any,
               priority: int = 0) -> Future:
        f = client.submit(fn, *args, pure=False, priority=PRIORITY[phase] + priority)
        what[f] = (phase, run)
        pending.add(f)
        prog.add(phase)
        return f

    def dataset_ready(run: TraceRun) -> None:
        if steps.sweep is not None and not steps.current(run.dataset):
            submit("plan", run, plan_task, str(run.dataset), steps.sweep)

    def planned(run: TraceRun, plan: Plan) -> None:
        ds, opts = str(run.dataset), steps.sweep
        # the longest replays first: simulated before observed, low N before high
        done = [submit("replay", run, group_task, ds, opts, g,
                       priority=(g.mode == "simulated") * 5 - g.max_order)
                for g in plan.groups]
        submit("write", run, finish_task, ds, opts, plan.configs, *done)

    with fleet_progress(quiet) as prog:
        for run in runs:
            if steps.make_dataset is None:
                run.dataset = run.source
                dataset_ready(run)
            else:
                fn, extra = steps.make_dataset
                submit("ingest", run, fn, str(run.source), *extra)
        for f in pending:
            phase, run = what.pop(f)
            # a replay's results go worker to worker into its write task, not here
            value = _result(f) if phase != "replay" or f.status == "error" else None
            f.release()
            failed = isinstance(value, TaskFailure)
            prog.finish(phase, failed)
            if failed:
                run.fail(value.message if value.worker == LOCAL
                         else f"{value.message} (on worker {value.worker})")
            elif run.error is not None or phase == "replay":
                continue
            elif isinstance(value, SweepDone):
                run.summary = value.summary
                run.workers |= value.workers
            elif isinstance(value, Plan):
                run.workers.add(value.worker)
                planned(run, value)
            else:  # ingest: the dataset's path
                run.dataset = Path(value)
                dataset_ready(run)
    return runs


def run_local(runs: list[TraceRun], steps: Steps, quiet: bool = False) -> list[TraceRun]:
    """Every input's steps here, one trace after another; failures recorded per trace."""
    from replay.engine.simulate import run_sweep

    with fleet_progress(quiet, ("trace",)) as prog:
        prog.add("trace", len(runs))
        for run in runs:
            try:
                if steps.make_dataset is None:
                    run.dataset = run.source
                else:
                    fn, extra = steps.make_dataset
                    value = fn(str(run.source), *extra)
                    if isinstance(value, TaskFailure):
                        raise _Failed(value.message)
                    run.dataset = Path(value)
                if steps.sweep is not None and not steps.current(run.dataset):
                    run.summary = run_sweep(run.dataset, steps.sweep, quiet=True)
                run.workers.add(LOCAL)
            except ReplayError as e:
                run.fail(str(e))
            prog.finish("trace", run.error is not None)
    return runs


class _Failed(ReplayError):
    """A local step's TaskFailure, raised to end that trace's steps."""
