"""Datasets as DuckDB views: `events`, `allocs`, `stacks`, `requests`, `runs`, `series`.

`open_datasets` opens one or several dataset directories in an in-memory DuckDB whose
views read the Parquet files in place (nothing is loaded into pandas unless a caller asks
for a frame). A `trace` column, the dataset directory's name, tells datasets apart.
Access is read-only: only queries run, and DuckDB may read nothing but the datasets.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from replay.dataset import EVENTS_FILE, SNAPSHOTS_DIR, STACKS_FILE, read_meta
from ingest.errors import InputError, QueryError
from replay.kernel.procfs import parse_pagetypeinfo
from replay.kernel.sql import kernel_macros
from replay.workers import result_of
from ingest.schema import CONTEXT_HARDIRQ, CONTEXT_NMI, CONTEXT_SOFTIRQ, STACKS

#: Internal view scripts in `queries/`, run in this order once the base views exist.
VIEW_SCRIPTS = ("_macros.sql", "_allocs.sql")

#: Engine outputs (written under `sim/` by `replay simulate`), viewed when present.
SIM_VIEWS = {name: f"sim/{name}.parquet" for name in ("requests", "runs", "series")}

#: Statement kinds a query may be: nothing that writes, attaches, installs or configures.
_READ_ONLY = {
    duckdb.StatementType.SELECT,
    duckdb.StatementType.EXPLAIN,
    duckdb.StatementType.PRAGMA,
    duckdb.StatementType.MULTI,  # PIVOT
}

#: DuckDB's memory cap when none is given: this share of physical RAM (DuckDB's own
#: default, 80%, leaves little to a machine that also runs the tracing or a sweep), or
#: $REPLAY_MEMORY_LIMIT (any DuckDB size, e.g. 2GiB)
MEMORY_SHARE = 0.25
MEMORY_LIMIT_ENV = "REPLAY_MEMORY_LIMIT"

@dataclass(frozen=True)
class Dataset:
    """One opened dataset directory."""

    trace: str
    path: Path
    meta: dict[str, Any]
    migratetype_names: tuple[str, ...] | None


def _sql_string(value: str) -> str:
    """A SQL string literal (view definitions cannot take bound parameters)."""
    return "'" + value.replace("'", "''") + "'"


def _one_line(sql: str) -> str:
    return " ".join(sql.split())


def default_memory_limit() -> str:
    """$REPLAY_MEMORY_LIMIT, else MEMORY_SHARE of physical RAM, as a DuckDB size."""
    given = os.environ.get(MEMORY_LIMIT_ENV)
    if given:
        return given
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # no such sysconf name: leave DuckDB's default
        return "80%"
    return f"{max(int(ram * MEMORY_SHARE) >> 20, 64)}MiB"


def _interrupt_or(e: Exception, where: str) -> Exception:
    """Ctrl-C during a query (DuckDB stops it and raises) as KeyboardInterrupt, so the CLI
    exits as interrupted; any other DuckDB error as `_query_error`'s one-line QueryError."""
    if isinstance(e, duckdb.InterruptException) or "interrupted" in str(e).lower():
        return KeyboardInterrupt()
    return _query_error(e, where)


def pagetypeinfo_names(path: Path) -> tuple[str, ...] | None:
    """Migratetype names in enum order from a /proc/pagetypeinfo snapshot, if any.

    The "Number of blocks type" header lists every migratetype of the traced kernel in
    its enum order (mm/vmstat.c pagetypeinfo_showblockcount_print), so it names the
    numbers better than any version table.
    """
    snaps = path / SNAPSHOTS_DIR
    if not snaps.is_dir():
        return None
    for snap in sorted(snaps.glob("*pagetypeinfo*")):
        try:
            types = parse_pagetypeinfo(snap.read_text(errors="replace")).types
        except OSError:
            continue
        if types:
            return types
    return None


def _trace_names(paths: Sequence[Path]) -> list[str]:
    """Directory names, made unique with parent directories where they collide."""
    resolved = [p.resolve() for p in paths]
    for i, p in enumerate(resolved):
        if p in resolved[:i]:
            raise InputError(paths[i], "dataset given twice")
    depth = 1
    while True:
        names = ["/".join(p.parts[-depth:]) for p in resolved]
        if len(set(names)) == len(names):
            return names
        depth += 1


def _stacks_type(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t) or pa.types.is_string(t):
        return "VARCHAR"
    return {"int64": "BIGINT", "int16": "SMALLINT", "uint64": "UBIGINT"}[str(t)]


def _empty_stacks() -> str:
    cols = ", ".join(f"CAST(NULL AS {_stacks_type(f.type)}) AS {f.name}" for f in STACKS)
    return f"SELECT {cols}, CAST(NULL AS VARCHAR) AS trace WHERE false"


@dataclass(frozen=True)
class Limits:
    """Bounds on one query: seconds before it is interrupted, rows returned at most."""

    seconds: float | None = None
    rows: int | None = None


@dataclass(frozen=True)
class Bounded:
    """A result within `Limits`: `truncated` when the query had more rows than returned."""

    table: pa.Table
    truncated: bool


class Database:
    """Opened datasets: `sql()` runs a read-only query and returns a DuckDB relation."""

    def __init__(self, datasets: list[Dataset], con: duckdb.DuckDBPyConnection) -> None:
        self.datasets = datasets
        self.con = con

    def cursor(self) -> Database:
        """The same datasets over a new connection to the same DuckDB (its views and
        restrictions): one per thread, since a connection runs one query at a time."""
        return Database(self.datasets, self.con.cursor())

    @property
    def traces(self) -> list[str]:
        """The `trace` value of every dataset, in the order given."""
        return [d.trace for d in self.datasets]

    def sql(self, query: str, params: Mapping[str, Any] | Sequence[Any] | None = None,
            label: str | None = None) -> duckdb.DuckDBPyRelation:
        """Run `query` (read-only) with bound `params`; a relation (`.df()`, `.arrow()`).
        Errors name the query by `label` (a named query's name) or by its SQL."""
        try:
            statements = duckdb.extract_statements(query)
        except duckdb.Error as e:
            raise _query_error(e, label or _one_line(query)) from None
        if not statements:
            raise QueryError(f"no SQL statement in: {_one_line(query) or repr(query)}")
        for st in statements:
            if st.type not in _READ_ONLY:
                raise QueryError(f"only queries can run (datasets are read-only), "
                                 f"not {st.type.name}: {_one_line(query)}")
        try:
            if params:
                return self.con.sql(query, params=params)
            return self.con.sql(query)
        except (duckdb.Error, RuntimeError) as e:
            raise _interrupt_or(e, label or _one_line(query)) from None

    def query(self, name: str, params: Mapping[str, str | None] | None = None
              ) -> duckdb.DuckDBPyRelation:
        """Run the named query `name` (queries/NAME.sql) with parameters given as text."""
        return self.sql(*_named(name, params), label=f"query {name}")

    def fetch(self, query: str, params: Mapping[str, Any] | Sequence[Any] | None = None,
              label: str | None = None) -> pa.Table:
        """The result of `query` as an Arrow table; errors as `QueryError`."""
        def run() -> pa.Table:
            rel = self.sql(query, params, label)
            if rel is None:  # a PRAGMA with no result
                return pa.table({})
            try:
                result = rel.arrow()
                # DuckDB 1.4+ hands out a stream, earlier versions a table.
                return result.read_all() if isinstance(result, pa.RecordBatchReader) else result
            except (duckdb.Error, RuntimeError) as e:
                raise _interrupt_or(e, label or _one_line(query)) from None

        # The query runs in a thread while this one waits where a signal can reach it:
        # blocked inside DuckDB, the main thread sees Ctrl-C only now and then.
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(run)
            try:
                return result_of(future)
            except KeyboardInterrupt:
                self.con.interrupt()
                try:
                    result_of(future)
                except (Exception, KeyboardInterrupt):  # noqa: BLE001 - stopping anyway
                    pass
                raise

    def fetch_bounded(self, query: str, params: Mapping[str, Any] | Sequence[Any] | None,
                      limits: Limits) -> Bounded:
        """The result of `query` within `limits`: interrupted after `limits.seconds`
        (a `QueryError`), cut after `limits.rows` rows."""
        timer = None
        if limits.seconds is not None:
            timer = threading.Timer(limits.seconds, self.con.interrupt)
            timer.daemon = True
            timer.start()
        try:
            rel = self.sql(query, params)
            if rel is None:
                return Bounded(pa.table({}), False)
            size = min(limits.rows or 1 << 16, 1 << 16) + 1
            # to_arrow_reader since DuckDB 1.4, fetch_record_batch (now deprecated) before
            reader = (rel.to_arrow_reader(size) if hasattr(rel, "to_arrow_reader")
                      else rel.fetch_record_batch(size))
            batches, rows = [], 0
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                if limits.rows is not None and rows > limits.rows:
                    break
            table = pa.Table.from_batches(batches, reader.schema)
        except duckdb.InterruptException:
            raise QueryError(f"stopped after the time limit of {limits.seconds:g} s: "
                             f"{_one_line(query)}") from None
        except duckdb.Error as e:
            raise _query_error(e, _one_line(query)) from None
        finally:
            if timer is not None:
                timer.cancel()
        if limits.rows is not None and table.num_rows > limits.rows:
            return Bounded(table.slice(0, limits.rows), True)
        return Bounded(table, False)

    def fetch_query(self, name: str, params: Mapping[str, str | None] | None = None
                    ) -> pa.Table:
        """The result of the named query `name` as an Arrow table."""
        return self.fetch(*_named(name, params), label=f"query {name}")

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _named(name: str, params: Mapping[str, str | None] | None) -> tuple[str, dict[str, Any]]:
    """The SQL of the named query `name` and its bound parameter values."""
    from replay.queries import named_query

    q = named_query(name)
    return q.sql, q.bind(dict(params or {}))


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


#: DuckDB's lines after the first that help: "Did you mean ...", "Candidate bindings: ..."
_HINT = re.compile(r"^(Did you mean|Candidate (bindings|functions))\b")
#: the views only a replay (`replay simulate`) creates
_REPLAY_VIEWS = ("requests", "runs", "series")


def _query_error(e: duckdb.Error, where: str) -> QueryError:
    """One line for a failed query: DuckDB's message with its hints, and which query; a
    view that only a replay creates says how to get it."""
    missing = re.match(r"Catalog Error: Table with name (\w+) does not exist", str(e))
    if missing and missing[1] in _REPLAY_VIEWS:
        return QueryError(f"{where}: the view {missing[1]} holds a replay's results: run "
                          "`replay simulate DATASET` first")
    lines = str(e).strip().splitlines()
    hints = [ln.strip() for ln in lines[1:] if _HINT.match(ln.strip())]
    # the whole of DuckDB's further lines (the caret under the error too) as the hint a
    # service shows beside the one-line message
    return QueryError(" ".join([_first_line(e), *hints]) + f" in: {where}",
                      "\n".join(lines[1:]).strip("\n"))


def _union(parts: Iterable[str]) -> str:
    return "\nUNION ALL BY NAME\n".join(parts)


def _read_parquet(path: Path, trace: str, number: int | None = None) -> str:
    extra = "" if number is None else f", {number:d}::SMALLINT AS _trace"
    return (f"SELECT *, {_sql_string(trace)} AS trace{extra} "
            f"FROM read_parquet({_sql_string(str(path))})")


def open_datasets(paths: Sequence[Path | str], memory_limit: str | None = None,
                  threads: int | None = None) -> Database:
    """Open dataset directories in DuckDB with the views every query may use.

    Views: `events` (events.parquet), `stacks` (stacks.parquet; empty with the STACKS
    columns where a dataset has none), `allocs` (queries/_allocs.sql), `requests`, `runs`
    and `series` (sim/*.parquet from `replay simulate`, when any dataset has them), each
    with a `trace` column; table `datasets`: one row per dataset with its provenance.
    `memory_limit` caps DuckDB's memory (default: `default_memory_limit()`); `threads`
    its worker threads (default: one per core).
    """
    if not paths:
        raise InputError(".", "no dataset given")
    paths = [Path(p) for p in paths]
    metas = [read_meta(p) for p in paths]
    datasets = [
        Dataset(trace, p, meta, pagetypeinfo_names(p))
        for trace, p, meta in zip(_trace_names(paths), paths, metas)
    ]
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar = false")  # stdout is for results
        try:
            con.execute("SET memory_limit = $m", {"m": memory_limit or default_memory_limit()})
        except duckdb.Error as e:
            raise QueryError(f"memory limit {memory_limit!r}: {_first_line(e)}") from None
        if threads is not None:
            con.execute("SET threads = $n", {"n": threads})
        # Spill big sorts to the system temp directory, never into the caller's cwd.
        con.execute("SET temp_directory = $dir",
                    {"dir": str(Path(tempfile.gettempdir()) / f"replay-duckdb-{os.getpid()}")})
        _define_views(con, datasets)
        # From here on DuckDB may read the datasets and nothing else.
        dirs = [str(d.path.resolve()) for d in datasets]
        con.execute("SET allowed_directories = $dirs", {"dirs": dirs})
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except duckdb.Error as e:
        con.close()
        raise InputError(paths[0], f"cannot open: {_first_line(e)}") from None
    except BaseException:
        con.close()
        raise
    return Database(datasets, con)


def _define_views(con: duckdb.DuckDBPyConnection, datasets: list[Dataset]) -> None:
    con.execute("""
        CREATE TABLE datasets (trace VARCHAR, path VARCHAR, format VARCHAR,
            kernel_release VARCHAR, migratetype_names VARCHAR[], page_size INTEGER,
            events BIGINT, first_ts_ns BIGINT, last_ts_ns BIGINT, lost_events BIGINT)""")
    for d in datasets:
        span = d.meta.get("time_span") or {}
        con.execute(
            "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [d.trace, str(d.path), d.meta.get("format"), d.meta.get("kernel_release"),
             list(d.migratetype_names) if d.migratetype_names else None,
             d.meta.get("page_size"), d.meta.get("events"), span.get("first_ts_ns"),
             span.get("last_ts_ns"), (d.meta.get("lost_events") or {}).get("total")],
        )
    # _events also numbers the datasets (_trace), for the pairing's window partitions.
    con.execute("CREATE TABLE _traces (_trace SMALLINT, trace VARCHAR)")
    con.executemany("INSERT INTO _traces VALUES (?, ?)",
                    [[i, d.trace] for i, d in enumerate(datasets)])
    events = _union(_read_parquet(d.path / EVENTS_FILE, d.trace, number=i)
                    for i, d in enumerate(datasets))
    con.execute(f"CREATE VIEW _events AS {events}")
    con.execute("CREATE VIEW events AS SELECT * EXCLUDE (_trace) FROM _events")
    with_stacks = [d for d in datasets if (d.path / STACKS_FILE).is_file()]
    stacks = _union(_read_parquet(d.path / STACKS_FILE, d.trace) for d in with_stacks)
    con.execute(f"CREATE VIEW stacks AS {stacks or _empty_stacks()}")
    for view, rel in SIM_VIEWS.items():
        having = [d for d in datasets if (d.path / rel).is_file()]
        if having:
            con.execute(f"CREATE VIEW {view} AS "
                        f"{_union(_read_parquet(d.path / rel, d.trace) for d in having)}")
    # The context bits come from the schema, the one place they are defined.
    irq = CONTEXT_HARDIRQ | CONTEXT_SOFTIRQ | CONTEXT_NMI
    con.execute(f"CREATE MACRO context_irq_bits() AS {irq:d}")
    con.execute(kernel_macros())
    for script in VIEW_SCRIPTS:
        con.execute(resources.files("queries").joinpath(script).read_text())
