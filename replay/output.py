"""Query results out: a table for people (rich; plain when piped), CSV, JSON or Parquet
for tools (a file's suffix picks its format)."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import TextIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ingest.errors import OutputError
from replay import signals
from replay.atomic import TMP, cannot_write, remove_stale, sibling, write_files

FORMATS = ("table", "csv", "json")
#: output file suffix -> the format written, whatever --format says
SUFFIX_FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json"}


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
        out.add_column(Text(name), justify="right" if right else "left", overflow="fold")
    for row in table.to_pylist():  # Text: a value is never markup (`[user]`, SQL arrays)
        out.add_row(*(Text(_cell(v)) for v in row.values()))
    console = Console(file=file, force_terminal=terminal, no_color=not terminal,
                      width=None if terminal else 1_000_000, highlight=False)
    console.print(out)


def render_csv(table: pa.Table, file: TextIO) -> None:
    """`table` as CSV with a header line; list and struct cells as JSON text."""
    for i, field in enumerate(table.schema):
        if pa.types.is_nested(field.type):
            text = [None if v is None else json.dumps(v, default=str)
                    for v in table.column(i).to_pylist()]
            table = table.set_column(i, field.name, pa.array(text, pa.string()))
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    file.write(buf.getvalue().decode())


def render_json(table: pa.Table, file: TextIO) -> None:
    """`table` as a JSON array of objects, one per row."""
    json.dump(table.to_pylist(), file, default=str, indent=1)
    file.write("\n")


def write_result(table: pa.Table, fmt: str, output: Path | None = None,
                 force: bool = False) -> None:
    """Write `table` as `fmt` to stdout, or to `output` in the format its suffix names
    (`.parquet`, `.csv`, `.json`; else `fmt`), refusing to replace it without force and
    creating missing parent directories; a failed write leaves no partial file."""
    if fmt not in FORMATS:
        raise OutputError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if output is None:
        buf = io.StringIO()
        _render(table, fmt, buf, terminal=sys.stdout.isatty())
        sys.stdout.write(buf.getvalue())
        return
    if output.is_dir():
        raise OutputError(f"{output}: is a directory, not a file to write")
    if output.exists() and not force:
        raise OutputError(f"{output}: already exists (use --force to replace it)")
    fmt = SUFFIX_FORMATS.get(output.suffix.lower(), fmt)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise cannot_write(output.parent, e) from None
    if fmt != "parquet":
        buf = io.StringIO()
        _render(table, fmt, buf, terminal=False)
        write_files([output], [buf.getvalue()])  # whole or not at all
        return
    remove_stale(output)
    tmp = sibling(output, TMP)
    try:
        pq.write_table(table, tmp)
        signals.check()  # a Ctrl-C whose KeyboardInterrupt was lost: nothing in place
        os.replace(tmp, output)
    except OSError as e:
        raise cannot_write(output, e) from None
    finally:
        tmp.unlink(missing_ok=True)


def _render(table: pa.Table, fmt: str, file: TextIO, terminal: bool) -> None:
    if fmt == "csv":
        render_csv(table, file)
    elif fmt == "json":
        render_json(table, file)
    else:
        render_table(table, file, terminal=terminal)
