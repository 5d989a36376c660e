"""Query results out: a table for people (rich; plain when piped), CSV or JSON for tools."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import TextIO

import pyarrow as pa
import pyarrow.csv as pacsv
from rich import box
from rich.console import Console
from rich.table import Table

from ingest.errors import OutputError
from replay.atomic import write_files

FORMATS = ("table", "csv", "json")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def render_table(table: pa.Table, file: TextIO, terminal: bool) -> None:
    """`table` as aligned columns: boxed and styled on a terminal, plain text otherwise."""
    out = Table(box=box.SIMPLE_HEAD if terminal else None, show_edge=False, pad_edge=False,
                header_style="bold" if terminal else "")
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
               for t in table.schema.types]
    for name, right in zip(table.column_names, numeric):
        out.add_column(name, justify="right" if right else "left", overflow="fold")
    for row in table.to_pylist():
        out.add_row(*(_cell(v) for v in row.values()))
    console = Console(file=file, force_terminal=terminal, no_color=not terminal,
                      width=None if terminal else 1_000_000, highlight=False)
    console.print(out)


def render_csv(table: pa.Table, file: TextIO) -> None:
    """`table` as CSV with a header line."""
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    file.write(buf.getvalue().decode())


def render_json(table: pa.Table, file: TextIO) -> None:
    """`table` as a JSON array of objects, one per row."""
    json.dump(table.to_pylist(), file, default=str, indent=1)
    file.write("\n")


def write_result(table: pa.Table, fmt: str, output: Path | None = None,
                 force: bool = False) -> None:
    """Write `table` as `fmt` to `output` (refusing to replace it without force) or stdout."""
    if fmt not in FORMATS:
        raise OutputError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if output is not None and output.is_dir():
        raise OutputError(f"{output}: is a directory, not a file to write")
    if output is not None and output.exists() and not force:
        raise OutputError(f"{output}: already exists (use --force to replace it)")
    buf = io.StringIO()
    if fmt == "csv":
        render_csv(table, buf)
    elif fmt == "json":
        render_json(table, buf)
    else:
        render_table(table, buf, terminal=output is None and sys.stdout.isatty())
    if output is None:
        sys.stdout.write(buf.getvalue())
        return
    write_files([output], [buf.getvalue()])  # whole or not at all
