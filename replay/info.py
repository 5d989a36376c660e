"""`replay info`: a dataset's provenance and counts as readable text."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _duration(ns: int | None) -> str:
    return "unknown" if ns is None else f"{ns / 1e9:.6f} s"


def render_info(path: Path, meta: dict[str, Any]) -> str:
    """The human-readable summary of a dataset's meta.json."""
    src = meta.get("source", {})
    span = meta.get("time_span", {})
    lost = meta.get("lost_events", {})
    lines = [f"dataset       {path}", f"source        {src.get('path')}"]
    if "sha256" in src:  # an ingested file
        lines.append(f"sha256        {src['sha256']}")
    if "host" in src:  # `replay record`: the tracefs of a live kernel
        lines.append(f"recorded on   {src['host']}")
    lines += [
        f"format        {meta.get('format')}"
        + (f" (version {meta['format_version']})" if meta.get("format_version") else ""),
        f"kernel        {meta.get('kernel_release') or 'unknown'}",
        f"cpus          {meta.get('cpus') or 'unknown'}",
        f"clock         {meta.get('clock') or 'unknown'}",
        f"duration      {_duration(span.get('duration_ns'))}",
        f"events        {meta.get('events', 0)}",
    ]
    for name, count in meta.get("event_counts", {}).items():
        lines.append(f"  {name:<28}{count:>12}")
    unknown = lost.get("unknown_count_cpus") or []
    lines.append(
        f"lost events   {lost.get('total', 0)}"
        + (f" (+ unknown counts on CPUs {unknown})" if unknown else "")
    )
    for cpu, n in (lost.get("per_cpu") or {}).items():
        lines.append(f"  cpu {cpu:<24}{n:>12}")
    skipped = meta.get("skipped", {})
    lines.append(f"other events  {skipped.get('total', 0)}")
    malformed = meta.get("malformed", {})
    lines.append(f"malformed     {malformed.get('total', 0)}")
    for example in malformed.get("examples", []):
        lines.append(f"  {example}")
    if meta.get("truncated"):
        lines.append("truncated     yes: the input ended inside the data")
    if meta.get("stack_frames"):
        lines.append(f"stack frames  {meta['stack_frames']}")
    if meta.get("snapshots"):
        lines.append(f"snapshots     {', '.join(meta['snapshots'])}")
    lines.append(f"schema        {meta.get('schema_version')} ({meta.get('tool')})")
    return "\n".join(lines) + "\n"
