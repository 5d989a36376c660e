"""The datasets of the data directory as the service reads them: their provenance, their
report, and SQL over them within the configured limits."""

from __future__ import annotations

import json
import math
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.errors import InputError
from replay.database import Database, Limits, open_datasets
from replay.dataset import read_meta
from replay.serve.catalogue import Catalogue
from replay.serve.ids import dataset_dir

REPORT_HTML = "report.html"
REPORT_JSON = "report.json"
TRASH_DIR = ".trash"


class NotFound(InputError):
    """No dataset (or report) of that id."""


@dataclass(frozen=True)
class Result:
    """A query's answer as the API sends it."""

    columns: list[str]
    rows: list[list[Any]]
    truncated: bool

    def public(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "truncated": self.truncated}


def _plain(value: Any) -> Any:
    """A value JSON can carry: NaN and infinities as text, the rest as they are or str."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def provenance(dataset: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The listing's summary of a dataset: format, kernel, events, duration."""
    span = meta.get("time_span") or {}
    duration = span.get("duration_ns")
    return {"id": dataset, "format": meta.get("format"),
            "kernel": meta.get("kernel_release"), "events": meta.get("events"),
            "duration_s": duration / 1e9 if duration is not None else None,
            "created": meta.get("created")}


class Datasets:
    """Reads the catalogue's datasets; one DuckDB per dataset, opened on first use, a
    cursor of it per query."""

    def __init__(self, data: Path, catalogue: Catalogue, limits: Limits) -> None:
        self.data = data
        self.catalogue = catalogue
        self.limits = limits
        self._lock = threading.Lock()
        self._open: dict[str, Database] = {}

    def path(self, dataset: str) -> Path:
        """The directory of a listed dataset; NotFound for an invalid or unknown id."""
        path = dataset_dir(self.data, dataset)
        if path is None or dataset not in self.catalogue.datasets():
            raise NotFound(dataset, "no such dataset")
        return path

    def list(self) -> list[dict[str, Any]]:
        """Every dataset with its provenance and origin."""
        out = []
        for dataset, (added, origin) in self.catalogue.datasets().items():
            try:
                meta = read_meta(self.data / dataset)
            except InputError:  # removed since the sync
                continue
            out.append({**provenance(dataset, meta), "added": added, "origin": origin,
                        "report": (self.data / dataset / REPORT_JSON).is_file()})
        return out

    def meta(self, dataset: str) -> dict[str, Any]:
        return read_meta(self.path(dataset))

    def report_file(self, dataset: str, name: str) -> Path:
        """report.html or report.json of a dataset; NotFound when it has none."""
        path = self.path(dataset) / name
        if not path.is_file():
            raise NotFound(dataset, f"no {name} (the dataset has no report)")
        return path

    def report(self, dataset: str) -> dict[str, Any]:
        return json.loads(self.report_file(dataset, REPORT_JSON).read_text())

    def _database(self, dataset: str) -> Database:
        path = self.path(dataset)
        with self._lock:
            if dataset not in self._open:
                self._open[dataset] = open_datasets([path])
            return self._open[dataset].cursor()

    def query(self, dataset: str, sql: str, params: dict[str, Any] | None = None) -> Result:
        """Run read-only `sql` over `dataset` within the limits (QueryError if it fails)."""
        db = self._database(dataset)
        try:
            bounded = db.fetch_bounded(sql, params, self.limits)
        finally:
            db.close()
        table = bounded.table
        columns = [c.to_pylist() for c in table.columns]
        rows = [[_plain(col[i]) for col in columns] for i in range(table.num_rows)]
        return Result(table.column_names, rows, bounded.truncated)

    def delete(self, dataset: str) -> None:
        """Remove a dataset: out of the catalogue at once, its files after."""
        path = self.path(dataset)
        with self._lock:
            db = self._open.pop(dataset, None)
        if db is not None:
            db.close()
        trash = self.data / TRASH_DIR
        trash.mkdir(exist_ok=True)
        target = trash / dataset
        shutil.rmtree(target, ignore_errors=True)
        path.rename(target)
        self.catalogue.remove_dataset(dataset)
        shutil.rmtree(target, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            for db in self._open.values():
                db.close()
            self._open.clear()
