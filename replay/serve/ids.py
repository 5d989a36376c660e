"""Dataset and job ids: checked before they name anything on disk."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

#: A dataset id is a directory name: letters, digits, `.`, `_`, `-`, not starting with
#: `.` (hidden entries are the service's own: the catalogue, uploads, logs).
DATASET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
JOB_ID = re.compile(r"[0-9a-f]{16}")
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def valid_dataset_id(text: str) -> bool:
    """Whether `text` may name a dataset directory."""
    return DATASET_ID.fullmatch(text) is not None


def valid_job_id(text: str) -> bool:
    """Whether `text` is of the form `new_job_id` makes."""
    return JOB_ID.fullmatch(text) is not None


def dataset_dir(data: Path, dataset: str) -> Path | None:
    """The directory of dataset `dataset` in `data`, or None when the id is not valid."""
    if not valid_dataset_id(dataset):
        return None
    path = data / dataset
    return path if path.parent == data else None


def new_job_id() -> str:
    return secrets.token_hex(8)


def new_dataset_id(filename: str) -> str:
    """An id for an upload: its file name made safe, and a random suffix."""
    stem = _SLUG.sub("-", Path(filename).name).strip(".-_")[:80] or "trace"
    return f"{stem}-{secrets.token_hex(3)}"


def safe_filename(filename: str) -> str:
    """The client's file name reduced to a safe single path component (its suffixes
    kept: they tell a compressed trace)."""
    return _SLUG.sub("_", Path(filename.replace("\\", "/")).name).lstrip(".") or "trace"
