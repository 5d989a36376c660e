"""The connection to a Dask distributed scheduler, and who runs a task."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ingest.errors import ReplayError

if TYPE_CHECKING:
    from distributed import Client

#: seconds to wait for the scheduler before giving up
CONNECT_TIMEOUT_S = 20
#: the name a task reports when it runs outside any worker (the local path)
LOCAL = "local"


class ClusterError(ReplayError):
    """The scheduler cannot be reached, or Dask distributed is not installed."""


@contextmanager
def connect(address: str) -> Iterator[Client]:
    """A client of the scheduler at `address` (tcp://HOST:PORT), closed on exit."""
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError("--scheduler needs Dask distributed: pip install "
                           "'replay[fleet]'") from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise ClusterError(f"{address}: cannot reach the Dask scheduler: {e}") from None
    try:
        yield client
    finally:
        client.close()


def worker_name() -> str:
    """The address of the Dask worker running the current task, else LOCAL."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return LOCAL
