"""Provenance and caveats of a report, from the dataset's meta.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The two readings of "max order" (docs/design.md §1), printed once in every report.
MAX_ORDER_READINGS = (
    "\"Max order N\" here is the largest order the buddy allocator serves, inclusive: "
    "Linux's MAX_PAGE_ORDER (MAX_ORDER became inclusive in 6.4, \"mm, treewide: redefine "
    "MAX_ORDER sanely\", and was renamed MAX_PAGE_ORDER in 6.8). In 2001-era (2.4) terms "
    "the same allocator has MAX_ORDER = N + 1 free lists: the thread's MAX_ORDER 10 is max "
    "order 9 here, and its proposed MAX_ORDER 5 or 6 is max order 4 or 5."
)


def duration_s(meta: dict[str, Any]) -> float | None:
    """The traced time in seconds, when the trace's clock counts nanoseconds."""
    ns = (meta.get("time_span") or {}).get("duration_ns")
    return ns / 1e9 if ns and meta.get("clock") in (None, "local", "global", "mono",
                                                     "mono_raw", "boot", "tai", "perf",
                                                     "uptime") else None


def provenance(dataset: Path, meta: dict[str, Any], source: Path, snapshots: Path
               ) -> dict[str, Any]:
    """Where the figures come from: trace, kernel, duration, events, lost events."""
    src = meta.get("source") or {}
    lost = meta.get("lost_events") or {}
    dur = duration_s(meta)
    kernel = meta.get("kernel_release")
    name = Path(src.get("path") or source).name
    events = meta.get("events", 0)
    title = (f"{name} — Linux {kernel or 'release unknown'}, "
             f"{'%.3f s' % dur if dur is not None else 'duration unknown'}, {events:,} events")
    fmt = meta.get("format") or "unknown"
    if meta.get("format_version"):
        fmt += f" (version {meta['format_version']})"
    per_cpu = ", ".join(f"cpu{c}: {n:,}" for c, n in (lost.get("per_cpu") or {}).items())
    summary = [
        ("trace", src.get("path") or str(source)),
        ("sha256", src.get("sha256") or "unknown"),
        ("format", fmt),
        ("kernel", kernel or "unknown"),
        ("cpus", str(meta.get("cpus") or "unknown")),
        ("clock", meta.get("clock") or "unknown"),
        ("duration", f"{dur:.6f} s" if dur is not None else "unknown"),
        ("events", f"{events:,} (" + ", ".join(
            f"{e} {n:,}" for e, n in (meta.get("event_counts") or {}).items()) + ")"),
        ("lost events", f"{lost.get('total', 0):,}" + (f" ({per_cpu})" if per_cpu else "")),
        ("dataset", str(dataset)),
        ("/proc snapshots", str(snapshots) if snapshots.is_dir() else "none"),
    ]
    return {"title": title, "summary": summary, "duration_s": dur, "kernel_release": kernel,
            "events": events, "lost_events": lost.get("total", 0),
            "lost_unknown_cpus": lost.get("unknown_count_cpus") or [],
            "sha256": src.get("sha256"), "trace": src.get("path") or str(source)}
