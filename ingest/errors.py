"""The one family of errors library code raises; only the CLI turns them into messages."""

from __future__ import annotations

from pathlib import Path


class ReplayError(Exception):
    """Base of every error `replay` reports to the user as one line."""


class InputError(ReplayError):
    """A trace or dataset that cannot be read: names the file, where, and what was wrong."""

    def __init__(self, path: str | Path, why: str, where: str | None = None) -> None:
        self.path = str(path)
        self.where = where
        self.why = why
        loc = f"{self.path}:{where}" if where else self.path
        super().__init__(f"{loc}: {why}")


class OutputError(ReplayError):
    """An output that cannot be written (exists without --force, unwritable directory)."""


class QueryError(ReplayError):
    """A SQL query that failed; the message carries the query, `hint` the database's
    further lines (a "Did you mean", the error's position in the query), if any."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class TracingError(ReplayError):
    """The live kernel's tracing cannot be used (not root, no tracefs, events missing)."""
