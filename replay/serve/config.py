"""The service's settings, and the token that guards its writes."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from ingest.errors import InputError, ReplayError
from replay.database import Limits
from replay.report.options import POLICIES, ReportOptions, parse_names, report_options
from replay.report.recommend import Bar

#: Environment variable holding the write token when no --token-file is given.
TOKEN_ENV = "REPLAY_TOKEN"
DEFAULT_PORT = 8421
#: Largest upload accepted by default: 4 GiB.
DEFAULT_MAX_UPLOAD = 4 << 30
DEFAULT_SQL_SECONDS = 30.0
DEFAULT_SQL_ROWS = 10_000


class ServeError(ReplayError):
    """The service cannot start as configured (a token missing for a public address)."""


@dataclass(frozen=True)
class ServeConfig:
    """Where the datasets live and how the service treats requests."""

    data: Path
    #: the bearer token writes need; None: writes are open (the server binds loopback only)
    token: str | None = None
    #: background jobs run at once
    jobs: int = 1
    max_upload: int = DEFAULT_MAX_UPLOAD
    sql_limits: Limits = Limits(DEFAULT_SQL_SECONDS, DEFAULT_SQL_ROWS)
    #: what each upload's report sweeps
    report: ReportOptions = field(default_factory=ReportOptions)
    #: Dask scheduler (tcp://HOST:PORT) each job's sweep runs on; None: the job's own
    #: process pool. Its workers must see the data directory (docs/fleet.md)
    scheduler: str | None = None


def read_token(token_file: Path | None) -> str | None:
    """The write token: the first line of `token_file`, else $REPLAY_TOKEN, else None."""
    if token_file is not None:
        try:
            text = Path(token_file).read_text().strip()
        except OSError as e:
            raise InputError(token_file, f"cannot read: {e.strerror}") from None
        if not text:
            raise InputError(token_file, "empty token file")
        return text.splitlines()[0].strip()
    return os.environ.get(TOKEN_ENV) or None


def is_loopback(host: str) -> bool:
    """Whether `host` names only this machine (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine with writes open to anyone."""
    if token is None and not is_loopback(host):
        raise ServeError(f"refusing to listen on {host} without a token: writes would be "
                         f"open to the network (give --token-file or set {TOKEN_ENV})")


def sweep_options(max_orders: str, searches: str, policies: str) -> ReportOptions:
    """Report options from `replay report`'s --max-order, --search and --policy; the bar
    judges the default bar's policy when swept, else the last policy swept."""
    swept = parse_names(policies, POLICIES, "policy")
    bar = Bar()
    bar_policy = bar.policy if bar.policy in swept else swept[-1]
    return report_options(max_orders, searches, policies, bar_policy, bar.min_satisfied)
