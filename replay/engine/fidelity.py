"""The model's fidelity, per zone: the baseline (N = the traced kernel's max order) and the
world against the kernel's own /proc snapshots and the trace.

What each figure can show: start free pages / blocks per order are the world's seeding
against start buddyinfo — equal by construction where seeded from it (a check of the
seeding, not evidence), informative only with kpageflags or where the trace's own pages
disagree; free blocks per migratetype against pagetypeinfo, at the start, test the typing
of pageblocks (the seeding follows buddyinfo per order, not the types) and at the end the
fallbacks that moved blocks between the lists; end free pages / blocks per order (the
baseline replay against end buddyinfo) are the real test of the replay; outcomes agreement (requests above
PAGE_ALLOC_COSTLY_ORDER served or failed as traced) can only fail one way, since traced
failures are never served; fallbacks against mm_page_alloc_extfrag compare the model's
migratetype fallbacks with the kernel's. The kernel's fragmentation indices (mm/vmstat.c)
are computed from the snapshots and from the model, side by side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from replay.engine.measures import indices
from replay.engine.world import NORDERS, Snapshots, World
from replay.kernel import migratetypes
from replay.kernel.procfs import PageTypeInfo


@dataclass(frozen=True)
class Pair:
    """A figure of the model beside the kernel's (None where the snapshot is missing)."""

    model: Any
    proc: Any


@dataclass(frozen=True)
class ZoneFidelity:
    """One zone's fidelity figures (see the module docstring for what each can show)."""

    zone: str
    managed: int
    world_pages: int
    seen_pages: int
    seeded_blocks_wanted: list[int]
    seeded_blocks_placed: list[int]
    start_free_pages: Pair
    start_blocks: Pair
    start_type_blocks: dict[str, Pair]  # per migratetype: model vs start pagetypeinfo
    end_type_blocks: dict[str, Pair]  # per migratetype: the baseline vs end pagetypeinfo
    end_free_pages: Pair
    end_blocks: Pair
    end_blocks_observed: list[int]
    end_pcp_pages: Pair
    end_unusable_index: Pair
    end_fragmentation_index: Pair


@dataclass(frozen=True)
class Fidelity:
    """The baseline against the kernel, for the whole trace and per zone."""

    baseline_max_order: int
    kernel_release: str | None
    fallback_era: str
    world_source: str
    world_estimate: bool
    requests_above_costly: int
    agreement: int
    agreement_share: float | None
    real_failed: int
    sim_failed: int
    fallbacks: int
    extfrag: int
    zones: dict[str, ZoneFidelity] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pages(blocks: list[int] | np.ndarray | None) -> int | None:
    if blocks is None:
        return None
    b = np.asarray(blocks, np.int64)
    return int((b << np.arange(len(b), dtype=np.int64)).sum())


def _blocks(values: list[int] | None) -> list[int] | None:
    if values is None:
        return None
    out = [0] * NORDERS
    for i, v in enumerate(values[:NORDERS]):
        out[i] = int(v)
    return out


def _index_pair(model: list[int], proc: list[int] | None) -> tuple[Pair, Pair]:
    um, fm = indices(np.array(model, np.int64), NORDERS)
    if proc is None:
        return Pair(um.tolist(), None), Pair(fm.tolist(), None)
    up, fp = indices(np.array(proc, np.int64), NORDERS)
    return Pair(um.tolist(), up.tolist()), Pair(fm.tolist(), fp.tolist())


def zone_label(world: World, z: int) -> str:
    """A zone's name, with its node when the layout has several nodes."""
    zone = world.layout.zones[z]
    nodes = {x.node for x in world.layout.zones}
    return zone.name if len(nodes) == 1 else zone.key


def _by_type(model: np.ndarray, proc: PageTypeInfo | None, key: str) -> dict[str, Pair]:
    """Free blocks per order of each migratetype (model: order x engine migratetype)
    beside pagetypeinfo's."""
    types = proc.free.get(key, {}) if proc else {}
    names = migratetypes.NAMES_4_4[:migratetypes.PCPTYPES]
    return {name: Pair(_blocks([int(x) for x in model[:, mt]]), _blocks(types.get(name)))
            for mt, name in enumerate(names)}


def zone_fidelity(world: World, snaps: Snapshots, end_sim: np.ndarray,
                  end_observed: np.ndarray, end_pcp: np.ndarray,
                  end_types: np.ndarray) -> dict[str, ZoneFidelity]:
    """Per zone: world and baseline against start/end buddyinfo, pagetypeinfo and end
    zoneinfo."""
    out = {}
    end_pcp_proc = {z.key: z.pcp_pages for z in snaps.end_zoneinfo or []}
    for z, zone in enumerate(world.layout.zones):
        start_proc = _blocks((snaps.start_buddyinfo or {}).get(zone.key))
        end_proc = _blocks((snaps.end_buddyinfo or {}).get(zone.key))
        start_model = world.start_blocks[z].tolist()
        end_model = [int(x) for x in end_sim[z][:NORDERS]] + [0] * max(0, NORDERS - end_sim.shape[1])
        ui, fi = _index_pair(end_model, end_proc)
        out[zone_label(world, z)] = ZoneFidelity(
            zone=zone.key, managed=zone.managed, world_pages=int(world.world_pages[z]),
            seen_pages=int(world.seen_pages[z]),
            seeded_blocks_wanted=world.seeded[z, 0].tolist(),
            seeded_blocks_placed=world.seeded[z, 1].tolist(),
            start_free_pages=Pair(_pages(start_model), _pages(start_proc)),
            start_blocks=Pair(start_model, start_proc),
            start_type_blocks=_by_type(world.start_type_blocks[z].T, snaps.start_pagetypeinfo,
                                       zone.key),
            end_type_blocks=_by_type(end_types[z], snaps.end_pagetypeinfo, zone.key),
            end_free_pages=Pair(_pages(end_model), _pages(end_proc)),
            end_blocks=Pair(end_model, end_proc),
            end_blocks_observed=end_observed[z].tolist(),
            end_pcp_pages=Pair(int(end_pcp[z]), end_pcp_proc.get(zone.key)),
            end_unusable_index=ui, end_fragmentation_index=fi)
    return out


def fidelity_lines(fid: Fidelity) -> list[str]:
    """The fidelity figures as text lines (replay simulate's output)."""
    lines = [f"baseline: N = {fid.baseline_max_order} (the traced kernel's), kernel "
             f"{fid.kernel_release or 'unknown'}, fallbacks of the {fid.fallback_era} era",
             f"world: {fid.world_source}" + (" (an ESTIMATE)" if fid.world_estimate else "")]
    lines += [f"note: {n}" for n in fid.notes]
    if fid.agreement_share is not None:
        lines.append(f"outcomes: {fid.agreement} of {fid.requests_above_costly} requests above "
                     f"order 3 as traced ({100 * fid.agreement_share:.1f}%; real failures "
                     f"{fid.real_failed}, simulated failures {fid.sim_failed})")
    lines.append(f"fallbacks: simulated {fid.fallbacks} vs mm_page_alloc_extfrag {fid.extfrag}")
    head = "  order".ljust(30) + "".join(f"{o:>8}" for o in range(NORDERS)) + "     pages"
    for name, z in fid.zones.items():
        lines.append(f"zone {name}: managed {z.managed}, world {z.world_pages}, touched by "
                     f"the trace {z.seen_pages}; per-CPU pages at end model "
                     f"{z.end_pcp_pages.model} / zoneinfo {z.end_pcp_pages.proc}")
        lines.append(head)
        for label, pair in (("start", z.start_blocks), ("end", z.end_blocks)):
            for who, vals in (("model", pair.model), ("buddyinfo", pair.proc)):
                if vals is None:
                    continue
                lines.append(f"  {label} {who}".ljust(30) + "".join(f"{v:>8}" for v in vals)
                             + f"{_pages(vals):>10}")
        for label, by_type in (("start", z.start_type_blocks), ("end", z.end_type_blocks)):
            for name, pair in by_type.items():
                if pair.proc is None:
                    continue
                for who, vals in (("model", pair.model), ("pagetypeinfo", pair.proc)):
                    lines.append(f"  {label} {name} {who}".ljust(30) + "".join(
                        f"{v:>8}" for v in vals) + f"{_pages(vals):>10}")
        if z.end_free_pages.proc:
            err = z.end_free_pages.model - z.end_free_pages.proc
            lines.append(f"  end free pages: model {z.end_free_pages.model} vs buddyinfo "
                         f"{z.end_free_pages.proc} ({100 * err / z.end_free_pages.proc:+.1f}%)")
    return lines
