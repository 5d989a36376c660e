"""The `replay` command line: a thin shell over the library.

Library code raises `ReplayError`s; `main` turns them into one line on stderr and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from replay.engine.simulate import SweepSummary

from ingest.errors import OutputError, ReplayError
from replay.progress import console, error, note, warn

app = typer.Typer(
    name="replay",
    help="Linux page-allocator traces into answers: ingest, query, replay, report.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        from replay import __version__

        typer.echo(f"replay {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version,
                       is_eager=True, help="Print replay's version and exit.")] = False,
) -> None:
    """Linux page-allocator traces into answers: ingest, query, replay, report."""


_SCHEDULER = typer.Option(
    "--scheduler", help="Dask scheduler (tcp://HOST:PORT) to run each input's ingest and "
    "each configuration's replay on; the inputs must be on storage its workers see at "
    "the same paths (docs/fleet.md). Default: here, in a local process pool.")


@app.command()
def ingest(
    traces: Annotated[list[Path], typer.Argument(
        help="Trace files (trace.dat, perf.data or text; gzip/zstd/xz accepted).",
        metavar="TRACE...")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                      help="Dataset directory to write (default: TRACE.replay).")] = None,
    fmt: Annotated[Optional[str], typer.Option("--input-format",
                   help="Force the input format instead of detecting it: ftrace, "
                        "trace-cmd-report, perf-script, function-graph, trace.dat, "
                        "perf.data.")] = None,
    legacy_fmt: Annotated[Optional[str], typer.Option("--format", hidden=True,
                          help="Old name of --input-format (until the next release).")
                          ] = None,
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
    scheduler: Annotated[Optional[str], _SCHEDULER] = None,
) -> None:
    """Read page-allocator traces into dataset directories (Parquet + meta.json)."""
    if legacy_fmt:
        warn("--format is now --input-format (--format is kept until the next release)")
    _make_parent(output)
    kwargs = {"fmt": fmt or legacy_fmt, "force": force, "strict": strict, "buffer": buffer,
              "kallsyms": kallsyms}
    if len(traces) == 1 and scheduler is None:
        from replay.ingestion import ingest as run_ingest

        out = run_ingest(traces[0], output, quiet=quiet, **kwargs)
        note(f"wrote {out}")
        _warn_unnamed_kernel_frames(out, kallsyms)
        return
    if output is not None and len(traces) > 1:
        raise typer.BadParameter("-o names one dataset: give one TRACE, or none",
                                 param_hint="--output")
    from replay.fleet.make import ingest_inputs

    _fleet_outcome(ingest_inputs(traces, output, kwargs, scheduler, quiet))


def _fleet_outcome(runs) -> None:  # noqa: ANN001 (replay.fleet loads only when used)
    """A line per input (`wrote DATASET`, or its one-line error); exit 1 if any failed."""
    for run in runs:
        if run.error is None:
            note(f"wrote {run.dataset}")
        else:
            console().print(f"[red]error:[/red] {run.label}: {run.error}", markup=True,
                            highlight=False, soft_wrap=True)
    if any(run.error is not None for run in runs):
        sys.exit(1)


def _make_parent(output: Optional[Path]) -> None:
    """`-o dir/x` with `dir` missing: make it (and its parents), as `mkdir -p` would."""
    if output is not None:
        try:
            output.absolute().parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{output.parent}: cannot create: {e.strerror}") from None


def _warn_unnamed_kernel_frames(dataset: Path, kallsyms: Optional[Path]) -> None:
    """A perf.data recorded on another machine has no kernel symbols here: say so at
    ingest, and how to name its frames, not only inside meta.json."""
    from replay.dataset import read_meta

    stacks = read_meta(dataset).get("stacks") or {}
    unnamed = stacks.get("unknown_kernel_frames") or 0
    if unnamed and kallsyms is None:
        why = stacks.get("why_no_symbols", "no kernel symbols").split("; pass --kallsyms")[0]
        warn(f"{unnamed} of {stacks.get('kernel_frames', unnamed)} kernel callchain frames "
             f"are unnamed ({why}): give the recording machine's /proc/kallsyms with "
             "--kallsyms FILE")


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
    _make_parent(output)
    out = run_record(opts)
    note(f"wrote {out}")


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _choices(text: str, option: str, known: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list of names from `known`; a usage error names the option, the
    wrong name and the choices."""
    names = _names(text)
    bad = [n for n in names if n not in known]
    if bad or not names:
        wrong = f"unknown {option.lstrip('-')} {bad[0]!r}: choose" if bad else "choose"
        raise typer.BadParameter(f"{wrong} from {', '.join(known)}", param_hint=f"'{option}'")
    return names


def _print_simulation(summary: SweepSummary, fmt: str) -> None:
    """The sweep's runs: the summary table on a terminal, plain aligned columns (no box
    drawing) in a pipe, each followed by the fidelity lines; or the runs table as CSV or
    JSON, the fidelity lines then on stderr so stdout stays data."""
    from rich.console import Console

    from replay.engine.summary import print_summary, summary_lines, summary_table

    if fmt == "table" and sys.stdout.isatty():
        print_summary(summary)
        return
    if fmt == "table":
        table = summary_table(summary.runs)
        table.box, table.title, table.show_edge, table.pad_edge = None, None, False, False
        Console(file=sys.stdout, width=100_000, no_color=True, highlight=False).print(table)
        typer.echo("\n".join(summary_lines(summary)))
        return
    _write(summary.runs, fmt, None, False)
    for line in summary_lines(summary):
        note(line)


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
    zoneinfo: Annotated[Optional[Path], typer.Option("--zoneinfo",
                        help="/proc/zoneinfo snapshot giving the zones (default: the "
                             "dataset's snapshots/start-zoneinfo, else inferred).")] = None,
    snapshots: Annotated[Optional[Path], typer.Option("--snapshots",
                         help="Directory of /proc snapshots (start-X/end-X or "
                              "before.X/after.X, X = zoneinfo, buddyinfo, pagetypeinfo, "
                              "meminfo; .txt allowed; default DATASET/snapshots).")] = None,
    kernel: Annotated[Optional[str], typer.Option("--kernel",
                      help="The traced kernel's release when the dataset does not say "
                           "(picks the kernel's rules, e.g. 6.1).")] = None,
    check: Annotated[bool, typer.Option("--check",
                     help="Validate the simulator's invariants at every sample (slow).")]
        = False,
    jobs: Annotated[int, typer.Option("-j", "--jobs",
                    help="Worker processes (default: every core).")] = 0,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress bar.")] = False,
    fmt: Annotated[str, typer.Option("--format",
                   help="Summary format: table (boxed on a terminal, plain columns in a "
                        "pipe), csv or json (the runs table; fidelity lines on stderr).")
                   ] = "table",
    scheduler: Annotated[Optional[str], _SCHEDULER] = None,
) -> None:
    """Replay a dataset through the buddy + memarea model; write DATASET/sim/*.parquet."""
    from replay.engine.memarea import SEARCHES
    from replay.engine.options import MODES, OptionError, SimOptions
    from replay.engine.simulate import run_sweep
    from replay.kernel.pagestate import POLICIES
    from replay.output import FORMATS
    from replay.report.options import parse_orders

    try:
        max_orders = parse_orders(max_order)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--max-order") from None
    _choices(fmt, "--format", FORMATS)
    options = SimOptions(
        max_orders=max_orders, searches=_choices(search, "--search", SEARCHES),
        policies=_choices(policy, "--policy", POLICIES),
        modes=_choices(mode, "--mode", MODES), align=align, offset=offset,
        zoneinfo=str(zoneinfo) if zoneinfo else None,
        snapshots=str(snapshots) if snapshots else None, kernel=kernel, check=check, jobs=jobs)
    try:
        options.validate()
    except OptionError as e:
        raise typer.BadParameter(str(e)) from None
    if scheduler is None:
        summary = run_sweep(dataset, options, quiet=quiet)
    else:
        from replay.fleet.make import simulate_on_cluster

        summary = simulate_on_cluster(dataset, options, scheduler, quiet=quiet)
    _print_simulation(summary, fmt)


@app.command()
def report(
    sources: Annotated[list[Path], typer.Argument(
        help="Trace files (ingested first) or dataset directories; several: one fleet "
             "report.", metavar="TRACE_OR_DATASET...")],
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
                             help="Lowest 95% lower confidence bound of the share of "
                                  "requests above N memarea must satisfy.")] = 0.99,
    snapshots: Annotated[Optional[Path], typer.Option("--snapshots",
                         help="Directory of /proc snapshots (start-zoneinfo, end-buddyinfo) "
                              "giving the memory layout and the fidelity check (default: "
                              "the dataset's snapshots/).")] = None,
    assume_no_thp: Annotated[bool, typer.Option(
        "--assume-no-thp", help="Assume THP disabled: lift the N >= HPAGE_PMD_ORDER "
        "constraint (the report says so).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace existing report files "
                                        "(and re-ingest a trace).")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress bars.")] = False,
    scheduler: Annotated[Optional[str], _SCHEDULER] = None,
) -> None:
    """Sweep candidate max orders and write a report recommending the lowest that works."""
    from replay.report.make import make_report
    from replay.report.options import POLICIES, SEARCHES, report_options

    _choices(search, "--search", SEARCHES)
    _choices(policy, "--policy", POLICIES)
    try:
        options = report_options(max_order, search, policy, bar_policy, min_satisfied,
                                 snapshots, assume_no_thp)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    if len(sources) > 1:
        if snapshots is not None:
            raise typer.BadParameter("one directory of snapshots cannot describe several "
                                     "machines: give each dataset its snapshots/",
                                     param_hint="--snapshots")
        from replay.fleet.make import make_fleet_report

        _make_parent(output)
        paths, runs = make_fleet_report(sources, output, options, scheduler, force, quiet)
        for path in paths:
            note(f"wrote {path}")
        typer.echo("fleet verdict: " + json.loads(paths[2].read_text())["fleet"]["headline"])
        _fleet_outcome([r for r in runs if r.error is not None])
        return
    _make_parent(output)
    if scheduler is None:
        paths = make_report(sources[0], output, options, force=force, quiet=quiet)
    else:
        from replay.fleet.make import report_on_cluster

        paths = report_on_cluster(sources[0], output, options, scheduler, force, quiet)
    for path in paths:
        note(f"wrote {path}")
    typer.echo(_verdict(next(p for p in paths if p.suffix == ".json")))


def _verdict(report_json: Path) -> str:
    """The report's recommendation as one line: its headline (report.json
    `recommendation.headline`: the answer, its constraints and confidence, or why there is
    none)."""
    rec = json.loads(report_json.read_text())["recommendation"]
    return f"verdict: {rec['headline']}"


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
        _write(db.fetch(q.sql, bound, label=f"query {name}"), fmt, output, force)


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


@app.command()
def serve(
    data: Annotated[Path, typer.Option("--data", help="Directory of the datasets and the "
                                       "service's catalogue (made if missing).")] = Path("."),
    host: Annotated[str, typer.Option("--host", help="Address to listen on (beyond loopback "
                                      "only with a token).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8421,
    token_file: Annotated[Optional[Path], typer.Option("--token-file",
                          help="File whose first line is the token uploads and deletes "
                               "need (default: $REPLAY_TOKEN; none: writes open, loopback "
                               "only).")] = None,
    jobs: Annotated[int, typer.Option("-j", "--jobs", min=1,
                    help="Uploads ingested and reported at once.")] = 1,
    max_upload_mib: Annotated[int, typer.Option("--max-upload", min=1,
                              help="Largest upload accepted, in MiB.")] = 4096,
    sql_seconds: Annotated[float, typer.Option("--sql-timeout", min=0.001,
                           help="Seconds a SQL query may run.")] = 30.0,
    sql_rows: Annotated[int, typer.Option("--sql-rows", min=1,
                        help="Rows a SQL answer holds at most.")] = 10_000,
    max_order: Annotated[str, typer.Option("--max-order",
                         help="Each upload's report: candidate max orders.")] = "3..10",
    search: Annotated[str, typer.Option("--search", help="Each upload's report: memarea "
                                        "searches.")] = "linear,coalesced,bitmap",
    policy: Annotated[str, typer.Option("--policy", help="Each upload's report: memarea "
                                        "policies (the bar judges migrate, else the last).")
                      ] = "free,reclaim,migrate",
    scheduler: Annotated[Optional[str], _SCHEDULER] = None,
) -> None:
    """Serve the datasets over HTTP: upload traces, read reports, run SQL, compare."""
    from replay.database import Limits
    from replay.serve.config import ServeConfig, read_token, sweep_options
    from replay.serve.server import run as run_server

    try:
        options = sweep_options(max_order, search, policy)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    config = ServeConfig(data.resolve(), read_token(token_file), jobs, max_upload_mib << 20,
                         Limits(sql_seconds, sql_rows), options, scheduler)
    run_server(config, host, port)


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
        error(_one_line(str(e)))
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
