"""The `replay` command line: a thin shell over the library.

Library code raises `ReplayError`s; `main` turns them into one line on stderr and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ingest.errors import ReplayError
from replay.progress import console, note

app = typer.Typer(
    name="replay",
    help="Linux page-allocator traces into answers: ingest, query, replay, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def ingest(
    trace: Annotated[Path, typer.Argument(help="Trace file (trace.dat, perf.data or text; "
                                          "gzip/zstd/xz accepted).")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                      help="Dataset directory to write (default: TRACE.replay).")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format",
                   help="Force the input format instead of detecting it: ftrace, "
                        "trace-cmd-report, perf-script, function-graph, trace.dat, "
                        "perf.data.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing dataset.")] = False,
    strict: Annotated[bool, typer.Option("--strict",
                      help="Fail on the first malformed page-event line.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress bar.")] = False,
    buffer: Annotated[Optional[str], typer.Option("--buffer",
                      help="trace.dat only: read this ftrace instance's buffer instead of "
                           "the top one.")] = None,
    kallsyms: Annotated[Optional[Path], typer.Option("--kallsyms",
                        help="perf.data only: the recording machine's /proc/kallsyms, to "
                             "name kernel callchain frames (default: this machine's, when "
                             "the file was recorded here).")] = None,
) -> None:
    """Read a page-allocator trace into a dataset directory (Parquet + meta.json)."""
    from replay.ingestion import ingest as run_ingest

    out = run_ingest(trace, output, fmt=fmt, force=force, strict=strict, quiet=quiet,
                     buffer=buffer, kallsyms=kallsyms)
    note(f"wrote {out}")


@app.command()
def info(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print meta.json as JSON.")] = False,
) -> None:
    """Print a dataset's provenance and event counts."""
    from replay.dataset import read_meta
    from replay.info import render_info

    meta = read_meta(dataset)
    if as_json:
        typer.echo(json.dumps(meta, indent=2))
    else:
        typer.echo(render_info(dataset, meta), nl=False)


@app.command(context_settings={"allow_interspersed_args": False})
def record(
    command: Annotated[Optional[list[str]], typer.Argument(
        help="Workload to run while recording, after `--` (default: record the whole "
             "system until --duration or Ctrl-C).", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                      help="Dataset directory to write (default: "
                           "record-DATE-TIME.replay).")] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", min=0,
                        help="Seconds to record (with a command: at most; the command "
                             "keeps running).")] = None,
    buffer_kb: Annotated[Optional[int], typer.Option("--buffer-kb", min=1,
                         help="Per-CPU ring-buffer size in KiB (default: 4096).",
                         show_default=False)] = None,
    events: Annotated[Optional[list[str]], typer.Option("--events", "-e",
                      help="kmem page events to enable, comma-separated or repeated "
                           "(default: all six).")] = None,
    kpageflags: Annotated[bool, typer.Option("--kpageflags",
                          help="Also store a compressed /proc/kpageflags image at the "
                               "start (the replay's initial state of unseen pages).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing dataset.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress display.")] = False,
    tracefs: Annotated[Optional[Path], typer.Option("--tracefs",
                       help="Where tracefs is mounted (default: /sys/kernel/tracing, "
                            "mounted if needed).")] = None,
) -> None:
    """Record the live kernel's page-allocator events into a dataset (needs root).

    Tracing runs in a private tracefs instance and every setting is restored on exit,
    error or Ctrl-C (which stops recording and still writes the dataset). /proc
    buddyinfo, pagetypeinfo, zoneinfo and meminfo are stored at start and end.
    """
    from replay.record import RecordOptions
    from replay.record import record as run_record
    from ingest.schema import canonical_event

    names = [n.strip().removeprefix("kmem:") for e in events or [] for n in e.split(",")]
    bad = [n for n in names if canonical_event(n) is None]
    if bad:
        raise typer.BadParameter(f"not a kmem page event: {', '.join(bad)}",
                                 param_hint="--events")
    given = {"buffer_kb": buffer_kb,
             "events": tuple(dict.fromkeys(map(canonical_event, names))) or None}
    opts = RecordOptions(output=output, duration=duration, command=tuple(command or ()),
                         kpageflags=kpageflags, force=force, quiet=quiet, tracefs=tracefs,
                         **{k: v for k, v in given.items() if v is not None})
    out = run_record(opts)
    note(f"wrote {out}")


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


@app.command()
def simulate(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory.")],
    max_order: Annotated[str, typer.Option("--max-order",
                         help="Candidate max orders N, as 5,6,10 or 3..10: the largest order "
                              "the buddy allocator serves, inclusive (a 2.4-era MAX_ORDER "
                              "of N+1).")] = "5,6,7,8,9,10",
    search: Annotated[str, typer.Option("--search",
                      help="memarea searches: linear, coalesced, bitmap.")] =
        "linear,coalesced,bitmap",
    policy: Annotated[str, typer.Option("--policy",
                      help="memarea policies: free, reclaim, migrate.")] =
        "free,reclaim,migrate",
    mode: Annotated[str, typer.Option("--mode", help="observed, simulated, or both.")] =
        "observed,simulated",
    align: Annotated[int, typer.Option("--align",
                     help="Run alignment in pages (default: the request size).")] = 0,
    offset: Annotated[int, typer.Option("--offset",
                      help="Run offset: runs start at s with s % align == offset.")] = 0,
    unknown: Annotated[str, typer.Option("--unknown",
                       help="Pages never seen in the trace: allocated or free.")] =
        "allocated",
    zoneinfo: Annotated[Optional[Path], typer.Option("--zoneinfo",
                        help="/proc/zoneinfo snapshot giving the zones (default: the "
                             "dataset's snapshots/start-zoneinfo, else inferred).")] = None,
    snapshots: Annotated[Optional[Path], typer.Option("--snapshots",
                         help="Directory of /proc snapshots (start-zoneinfo, "
                              "end-buddyinfo; default DATASET/snapshots).")] = None,
    check: Annotated[bool, typer.Option("--check",
                     help="Validate the simulator's invariants at every sample (slow).")]
        = False,
    jobs: Annotated[int, typer.Option("-j", "--jobs",
                    help="Worker processes (default: every core).")] = 0,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress bar.")] = False,
) -> None:
    """Replay a dataset through the buddy + memarea model; write DATASET/sim/*.parquet."""
    from replay.engine.report import print_summary
    from replay.engine.simulate import SimOptions, run_sweep
    from replay.report.options import parse_orders

    try:
        max_orders = parse_orders(max_order)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--max-order") from None
    options = SimOptions(
        max_orders=max_orders, searches=_names(search),
        policies=_names(policy), modes=_names(mode), align=align, offset=offset,
        unknown=unknown, zoneinfo=str(zoneinfo) if zoneinfo else None,
        snapshots=str(snapshots) if snapshots else None, check=check, jobs=jobs)
    options.validate()
    summary = run_sweep(dataset, options, quiet=quiet)
    print_summary(summary)


@app.command()
def report(
    source: Annotated[Path, typer.Argument(help="Trace file (ingested first) or dataset "
                                           "directory.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                      help="report.html to write; report.md and report.json go beside it "
                           "(default: DATASET/report.html).")] = None,
    max_order: Annotated[str, typer.Option("--max-order",
                         help="Candidate max orders: a range and/or list, e.g. 3..10 or "
                              "5,6,10.")] = "3..10",
    search: Annotated[str, typer.Option("--search", help="memarea searches: linear, "
                                        "coalesced, bitmap.")] = "linear,coalesced,bitmap",
    policy: Annotated[str, typer.Option("--policy", help="memarea policies: free, reclaim, "
                                        "migrate.")] = "free,reclaim,migrate",
    bar_policy: Annotated[str, typer.Option("--bar-policy",
                          help="Policy the recommendation's bar judges.")] = "migrate",
    min_satisfied: Annotated[float, typer.Option("--min-satisfied",
                             help="Share of requests above N memarea must satisfy for the "
                                  "bar.")] = 0.99,
    snapshots: Annotated[Optional[Path], typer.Option("--snapshots",
                         help="Directory of /proc snapshots (start-zoneinfo, end-buddyinfo) "
                              "giving the memory layout and the fidelity check (default: "
                              "the dataset's snapshots/).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing report files "
                                        "(and re-ingest a trace).")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress bars.")] = False,
) -> None:
    """Sweep candidate max orders and write a report recommending the lowest that works."""
    from replay.report.make import make_report
    from replay.report.options import report_options

    try:
        options = report_options(max_order, search, policy, bar_policy, min_satisfied,
                                 snapshots)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    for path in make_report(source, output, options, force=force, quiet=quiet):
        note(f"wrote {path}")


_FORMAT_HELP = "Output format: table (aligned; boxed on a terminal), csv or json."


def _write(table, fmt: str, output: Optional[Path], force: bool) -> None:  # noqa: ANN001
    from replay.output import write_result

    write_result(table, fmt, output, force=force)


# ignore_unknown_options: a query may start with a `--` comment, which click would
# otherwise take for an option (`replay sql DATASET -- "-- c..."` works as well)
@app.command(context_settings={"ignore_unknown_options": True})
def sql(
    args: Annotated[list[str], typer.Argument(
        help="Dataset directories (views: events, allocs, stacks, datasets; requests, runs "
             "and series after replay simulate), then the SQL query as the last argument.",
        metavar="DATASET... SQL")],
    fmt: Annotated[str, typer.Option("--format", help=_FORMAT_HELP)] = "table",
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                      help="Write the result to this file instead of stdout.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output file.")
                     ] = False,
    memory_limit: Annotated[Optional[str], typer.Option("--memory-limit",
                            help="DuckDB memory cap, e.g. 2GiB (default: a quarter of "
                                 "RAM, or $REPLAY_MEMORY_LIMIT).")] = None,
) -> None:
    """Run a read-only SQL query over one or more datasets."""
    from replay.database import open_datasets

    if len(args) < 2:
        raise typer.BadParameter("give at least one DATASET and the SQL query")
    *datasets, query = args  # the SQL stays text: a Path would fold "//" (integer division)
    if not query.strip():
        raise typer.BadParameter("the SQL query is empty")
    with open_datasets([Path(d) for d in datasets], memory_limit=memory_limit) as db:
        _write(db.fetch(query), fmt, output, force)


@app.command()
def query(
    name: Annotated[Optional[str], typer.Argument(
        help="Named query (replay query --list shows them).")] = None,
    datasets: Annotated[Optional[list[Path]], typer.Argument(
        help="Dataset directories.", show_default=False)] = None,
    params: Annotated[Optional[list[str]], typer.Option("--param", "-p",
                      help="Query parameter as NAME=VALUE (repeatable); --show-sql lists "
                           "a query's parameters.")] = None,
    fmt: Annotated[str, typer.Option("--format", help=_FORMAT_HELP)] = "table",
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                      help="Write the result to this file instead of stdout.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output file.")
                     ] = False,
    show_sql: Annotated[bool, typer.Option("--show-sql",
                        help="Print the query's SQL (and the values bound) on stderr.")
                        ] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the named queries and exit.")
                     ] = False,
) -> None:
    """Run a named query (queries/*.sql) over one or more datasets."""
    from replay.queries import named_queries, named_query

    if list_:
        width = max(map(len, named_queries()))
        for q in named_queries().values():
            typer.echo(f"{q.name:<{width}}  {q.description}")
        return
    if not name or not datasets:
        raise typer.BadParameter("give a query NAME and at least one DATASET (or --list)")
    given = {}
    for item in params or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise typer.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--param")
        given[key.strip()] = value
    q = named_query(name)
    bound = q.bind(given)
    if show_sql:
        console().print(q.sql.rstrip(), markup=False, highlight=False, soft_wrap=True)
        for key, value in bound.items():
            console().print(f"-- ${key} = {value!r}", markup=False, highlight=False,
                            soft_wrap=True)
    from replay.database import open_datasets

    with open_datasets(datasets) as db:
        _write(db.fetch(q.sql, bound), fmt, output, force)


@app.command()
def stat(
    datasets: Annotated[list[Path], typer.Argument(help="Dataset directories.")],
    kernel: Annotated[Optional[str], typer.Option("--kernel",
                      help="Kernel release to assume for migratetype names when a dataset "
                           "names none (e.g. 4.3: MOVABLE was 2 before 4.4).")] = None,
) -> None:
    """Print the `perf kmem --page stat` summary, with correct migratetype names."""
    from replay.database import open_datasets
    from replay.stat import page_stat

    with open_datasets(datasets) as db:
        typer.echo(page_stat(db, kernel=kernel), nl=False)


#: exit status of a run stopped by SIGINT, SIGTERM or SIGHUP (128 + SIGINT, as shells
#: report Ctrl-C); the same for all three so scripts test one value
EXIT_INTERRUPTED = 130


def _one_line(message: str) -> str:
    """`message` with control characters escaped: a damaged name from an input (an event
    name with a newline in it) cannot break the one-line error."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def _interrupted() -> None:
    console().print("[red]interrupted[/red]")
    sys.exit(EXIT_INTERRUPTED)


def main() -> None:
    """Entry point: run the app, turning library errors into one-line messages.

    SIGTERM and SIGHUP stop a run as Ctrl-C does (replay.signals): every `with` unwinds,
    so writers remove their temporary outputs, and the exit status is 130.
    """
    from replay import signals

    previous = signals.install()
    try:
        _main()
        if signals.received():  # its KeyboardInterrupt was lost on the way
            _interrupted()
    finally:  # a caller in-process (the tests) gets its own handlers back
        signals.restore(previous)


def _main() -> None:
    try:
        # standalone_mode=False: typer turns KeyboardInterrupt into a *returned* 130
        code = app(standalone_mode=False)
    except ReplayError as e:
        from rich.markup import escape

        console().print("[red]error:[/red] " + escape(_one_line(str(e))), soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        _interrupted()
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as e:  # usage errors of typer's (vendored) click arrive here
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            sys.exit(e.exit_code)
        raise
    if code == EXIT_INTERRUPTED:
        _interrupted()
    if isinstance(code, int) and code:
        sys.exit(code)


def run() -> None:
    """The `replay` script and `python -m replay`: `main`, then exit without the
    interpreter's teardown (~70 ms of freeing every module's objects, a tenth of an
    ingest), as mypy does: by then every output is written and closed."""
    try:
        main()
        code = 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`) or stream
            pass
    os._exit(code)
