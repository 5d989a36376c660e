"""What every configuration of a sweep shares: the stream, the world, the zones' arrays,
the kernel era, the options (inherited by forked workers, never copied)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.errors import InputError
from replay.dataset import KPAGEFLAGS, read_meta, recorded_events
from replay.engine.layout import ZONE_INDEX, Layout
from replay.engine.options import SimOptions
from replay.engine.stream import Stream, load_stream
from replay.engine.world import Snapshots, World, build_world, load_snapshots
from replay.kernel import fallbacks
from replay.kernel.release import KernelRelease, parse_release


@dataclass
class Context:
    """The shared inputs of every configuration."""

    stream: Stream
    world: World
    snaps: Snapshots
    options: SimOptions
    release: KernelRelease | None
    release_text: str | None
    era: int
    nofragment: bool
    kernel_max_order: int
    zlo: np.ndarray
    zhi: np.ndarray
    ztype: np.ndarray
    wmin: np.ndarray
    wlow: np.ndarray
    prot: np.ndarray
    tzone: np.ndarray  # int8 per stream entry: the zone index of its traced pfn (-1 none)
    sample_every: int

    @property
    def layout(self) -> Layout:
        return self.world.layout


def kernel_release(meta: dict[str, Any], options: SimOptions, snaps: Snapshots) -> str | None:
    """The traced kernel's release: --kernel, else meta.json, else a uname-r snapshot."""
    if options.kernel:
        return options.kernel
    rel = meta.get("kernel_release")
    if rel:
        return str(rel)
    if snaps.directory is not None:
        for name in ("uname-r.txt", "uname-r"):
            path = snaps.directory / name
            if path.is_file():
                return path.read_text().strip() or None
    return None


def prepare(dataset: Path, options: SimOptions) -> Context:
    """Load the stream, the snapshots and the world of a dataset."""
    options.validate()
    snapdir = options.snapshot_dir(dataset)
    snaps = load_snapshots(snapdir, KPAGEFLAGS,
                           Path(options.zoneinfo) if options.zoneinfo else None,
                           required=options.snapshots is not None)
    meta = read_meta(dataset)
    text = kernel_release(meta, options, snaps)
    release = parse_release(text)
    stream = load_stream(dataset, release, recorded_events(meta))
    if not len(stream.kind):
        raise InputError(dataset, "no mm_page_alloc / mm_page_free events to replay")
    return build_context(stream, snaps, options, text)


def build_context(stream: Stream, snaps: Snapshots, options: SimOptions,
                  release_text: str | None = None) -> Context:
    """The shared context of a stream and its snapshots."""
    world, stream = build_world(stream, snaps)
    zlo, zhi, ztype = world.layout.arrays()
    wmin, wlow, prot = world.layout.watermarks()
    tzone = world.layout.zone_of(stream.pfn, ZONE_INDEX)
    every = max(1, -(-len(stream.kind) // max(options.series_samples, 1)))
    release = stream.release
    return Context(stream, world, snaps, options, release, release_text,
                   fallbacks.fallback_era(release), fallbacks.nofragment(release),
                   world.kernel_max_order, zlo, zhi, ztype, wmin, wlow, prot,
                   tzone, every)
