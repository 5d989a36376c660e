"""Kernel releases: which era of a rule applies to a trace.

A trace says which kernel made it (`meta.json` `kernel_release`, a `uname-r` snapshot, or
the user's `--kernel`); the rules in this package that changed over time pick their
version with `at_least`. An unknown release takes the newest rules, and says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RELEASE = re.compile(r"^\s*(\d+)\.(\d+)")


@dataclass(frozen=True, order=True)
class KernelRelease:
    """major.minor of a kernel release string such as "6.18.44-fc" or "5.10.0-35-amd64"."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


#: What an unknown release is taken to be: the newest rules this package knows.
NEWEST = KernelRelease(6, 18)


def parse_release(text: str | None) -> KernelRelease | None:
    """The major.minor of a release string, or None when it names no release."""
    m = _RELEASE.match(text or "")
    return KernelRelease(int(m.group(1)), int(m.group(2))) if m else None


def at_least(release: KernelRelease | None, major: int, minor: int) -> bool:
    """Whether `release` is major.minor or newer (an unknown release counts as NEWEST)."""
    return (release or NEWEST) >= KernelRelease(major, minor)
