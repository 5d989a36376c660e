"""The catalogue: datasets and jobs in a SQLite file in the data directory, so both
survive a restart. Datasets are the directories of DIR (as `replay ingest` writes them);
the catalogue adds where each came from and keeps every job's last state."""

from __future__ import annotations

import fcntl
import sqlite3
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from replay.dataset import is_dataset
from replay.serve.config import ServeError
from replay.serve.ids import valid_dataset_id

CATALOGUE_FILE = ".catalogue.sqlite"
#: Locked while a server uses the directory.
LOCK_FILE = ".lock"
#: Job states; the last two are final.
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
FINAL = (DONE, FAILED)
#: The error of a job the server stopped (killed, restarted) before it finished.
INTERRUPTED = "the server stopped while the job ran; upload the trace again"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY, added TEXT NOT NULL, origin TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, dataset TEXT NOT NULL, filename TEXT NOT NULL,
    state TEXT NOT NULL, phase TEXT, progress REAL NOT NULL, error TEXT,
    created TEXT NOT NULL, updated TEXT NOT NULL);
"""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Job:
    """One upload's background work: ingest, sweep, report."""

    id: str
    dataset: str
    filename: str
    state: str = QUEUED
    phase: str | None = None
    progress: float = 0.0
    error: str | None = None
    created: str = ""
    updated: str = ""

    def public(self) -> dict[str, Any]:
        """The job as `GET /api/jobs/ID` answers it."""
        return asdict(self)


class Catalogue:
    """The SQLite catalogue; thread-safe (one connection behind a lock)."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self._lock = threading.Lock()
        try:
            data.mkdir(parents=True, exist_ok=True)
            # one server per directory: a second would fail the first one's jobs as
            # left over from a crash, and delete their files
            self._owner = open(data / LOCK_FILE, "a+")
        except OSError as e:
            raise ServeError(f"{data}: cannot use as the data directory: {e.strerror}"
                             ) from None
        try:
            fcntl.flock(self._owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._owner.close()
            raise ServeError(f"{data}: another replay serve uses this data directory"
                             ) from None
        try:
            self._db = sqlite3.connect(data / CATALOGUE_FILE, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            self._owner.close()
            raise ServeError(f"{data / CATALOGUE_FILE}: cannot open the catalogue: {e}"
                             ) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._owner.close()

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # jobs
    def save_job(self, job: Job) -> None:
        job.updated = now()
        job.created = job.created or job.updated
        self._run("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (job.id, job.dataset, job.filename, job.state, job.phase, job.progress,
                   job.error, job.created, job.updated))

    def jobs(self) -> list[Job]:
        """Every job, newest first."""
        rows = self._run("SELECT * FROM jobs ORDER BY created DESC, rowid DESC")
        return [Job(*r) for r in rows]

    def fail_unfinished(self) -> list[Job]:
        """Mark the jobs a previous server left queued or running as failed; return them."""
        left = [j for j in self.jobs() if j.state not in FINAL]
        for job in left:
            job.state, job.error = FAILED, INTERRUPTED
            self.save_job(job)
        return left

    # datasets
    def add_dataset(self, dataset: str, origin: str) -> None:
        self._run("INSERT OR REPLACE INTO datasets VALUES (?, ?, ?)", (dataset, now(), origin))

    def remove_dataset(self, dataset: str) -> None:
        self._run("DELETE FROM datasets WHERE id = ?", (dataset,))

    def datasets(self) -> dict[str, tuple[str, str]]:
        """Dataset id -> (added, origin), after syncing with the directories of DIR:
        dataset directories put there by hand join, vanished ones leave; those of jobs
        not yet done are not listed."""
        known = {r[0]: (r[1], r[2]) for r in self._run("SELECT * FROM datasets")}
        making = {r[0] for r in self._run("SELECT dataset FROM jobs WHERE state IN (?, ?)",
                                          (QUEUED, RUNNING))}
        present = {p.name for p in self.data.iterdir()
                   if valid_dataset_id(p.name) and p.name not in making and p.is_dir()
                   and is_dataset(p)}
        for gone in set(known) - present:
            self.remove_dataset(gone)
            del known[gone]
        for new in sorted(present - set(known)):
            self.add_dataset(new, "found in the data directory")
            known[new] = self._run("SELECT added, origin FROM datasets WHERE id = ?",
                                   (new,))[0]
        return dict(sorted(known.items()))
