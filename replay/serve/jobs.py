"""Background jobs: a bounded pool of threads, each driving one worker process
(`replay.serve.worker`) from upload to report, its state kept in the catalogue.

A job writes its dataset where it will stay, DIR/ID (so the report names that
directory); the catalogue lists it only once the job is done, and a job that fails, or
that a stopped server left unfinished, has its dataset directory removed."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from replay.serve.catalogue import DONE, FAILED, FINAL, INTERRUPTED, RUNNING, Catalogue, Job
from replay.serve.config import ServeConfig
from replay.serve.worker import Spec

UPLOADS_DIR = ".uploads"
LOGS_DIR = ".logs"
#: Seconds between saves of a running job's progress to the catalogue.
SAVE_EVERY = 1.0


def _worker_env() -> dict[str, str]:
    """The server's environment, with this `replay` first on the path: the worker runs
    in the upload's directory, and must import the same code as the server."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{path}" if path else root}


class JobManager:
    """Runs uploads' jobs, at most `config.jobs` at once, and answers for their state."""

    def __init__(self, config: ServeConfig, catalogue: Catalogue) -> None:
        self.config = config
        self.catalogue = catalogue
        self.uploads, self.logs = config.data / UPLOADS_DIR, config.data / LOGS_DIR
        # Jobs a previous server left unfinished failed with it; their files go.
        for job in catalogue.fail_unfinished():
            self._remove_output(job)
        shutil.rmtree(self.uploads, ignore_errors=True)
        for d in (self.uploads, self.logs):
            d.mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._jobs = {j.id: j for j in reversed(catalogue.jobs())}  # oldest first
        self._procs: dict[str, subprocess.Popen] = {}
        self._closing = False
        self._pool = ThreadPoolExecutor(config.jobs, thread_name_prefix="replay-job")

    def upload_dir(self, job_id: str) -> Path:
        """Where job `job_id`'s upload is written (removed when the job ends)."""
        return self.uploads / job_id

    def submit(self, job: Job, trace: Path) -> Job:
        """Queue `job` on its uploaded `trace`."""
        with self._lock:
            self._jobs[job.id] = job
        self.catalogue.save_job(job)
        self._pool.submit(self._run, job, trace)
        return self.get(job.id)

    def get(self, job_id: str) -> Job | None:
        """A copy of the job's current state."""
        with self._lock:
            job = self._jobs.get(job_id)
            return dataclasses.replace(job) if job else None

    def list(self) -> list[Job]:
        """Every job, newest first."""
        with self._lock:
            return [dataclasses.replace(j) for j in reversed(self._jobs.values())]

    def busy(self, dataset: str) -> bool:
        """Whether an unfinished job is making `dataset`."""
        with self._lock:
            return any(j.dataset == dataset and j.state not in FINAL
                       for j in self._jobs.values())

    def _update(self, job: Job, save: bool, **changes: object) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(job, key, value)
        if save:
            self.catalogue.save_job(job)

    def _remove_output(self, job: Job) -> None:
        """Remove what an unfinished job wrote: its dataset directory and the ingest's
        temporary one beside it."""
        data = self.config.data
        for path in (data / job.dataset, *data.glob(f".{job.dataset}.tmp-*")):
            shutil.rmtree(path, ignore_errors=True)

    def _run(self, job: Job, trace: Path) -> None:
        try:
            if self._closing:
                return
            self._update(job, True, state=RUNNING, phase="ingest")
            error = self._work(job, trace, self.config.data / job.dataset)
            if error is None:
                self.catalogue.add_dataset(job.dataset, f"upload of {job.filename}")
                self._update(job, True, state=DONE, phase=None, progress=1.0)
            else:
                self._remove_output(job)
                self._update(job, True, state=FAILED, error=error)
        except Exception as e:  # noqa: BLE001 - the job fails, the server stays up
            traceback.print_exc()
            self._remove_output(job)
            message = " ".join(f"internal error: {type(e).__name__}: {e}".split())
            self._update(job, True, state=FAILED, error=message)
        finally:
            shutil.rmtree(self.upload_dir(job.id), ignore_errors=True)

    def _work(self, job: Job, trace: Path, out: Path) -> str | None:
        """Run the worker process; None when it succeeded, else its one-line error."""
        # The worker runs in the upload's directory and names the trace as the client did,
        # so its errors read as the command line's on that file (`x.png: binary file ...`).
        spec = Spec(Path(trace.name), out.absolute(), self.config.report, os.getpid(),
                    self.config.scheduler)
        log_path = self.logs / f"{job.id}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "replay.serve.worker"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=log, cwd=trace.parent, env=_worker_env())
        with self._lock:
            self._procs[job.id] = proc
        if self._closing:  # close() may have looked before the worker was registered
            proc.kill()
        try:
            proc.stdin.write(pickle.dumps(spec))
            proc.stdin.close()
            last: dict = {}
            saved = 0.0
            for line in proc.stdout:
                last = json.loads(line)
                if "phase" in last:
                    save = last["phase"] != job.phase or time.monotonic() - saved > SAVE_EVERY
                    self._update(job, save, phase=last["phase"], progress=last["progress"])
                    saved = time.monotonic() if save else saved
            code = proc.wait()
        finally:
            with self._lock:
                self._procs.pop(job.id, None)
            if log_path.stat().st_size == 0:
                log_path.unlink()
        if self._closing:
            return INTERRUPTED
        if last.get("done") and code == 0:
            return None
        if "error" in last:
            return last["error"]
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        return f"the job's worker stopped ({how}) in phase {job.phase}"

    def close(self) -> None:
        """Stop: queued jobs do not start, running ones are killed; both end failed."""
        self._closing = True
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            proc.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for job in self.catalogue.fail_unfinished():
            self._remove_output(job)
