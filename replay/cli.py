"""The `replay` command line: a thin shell over the library.

Library code raises `ReplayError`s; `main` turns them into one line on stderr and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from replay.errors import ReplayError
from replay.progress import console

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
    console.print(f"wrote {out}")


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


def main() -> None:
    """Entry point: run the app, turning library errors into one-line messages."""
    try:
        app(standalone_mode=False)
    except ReplayError as e:
        console.print(f"[red]error:[/red] {e}", soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]")
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as e:  # click usage errors arrive here in non-standalone mode
        from click.exceptions import ClickException

        if isinstance(e, ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
