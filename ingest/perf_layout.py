"""How to tell which attribute a record belongs to, as arrays for the compiled walker.

With one attribute, every sample is its. With several, perf identifies samples by the
SAMPLE_IDENTIFIER word (first word of a sample, last of a sample_id_all trailer) or, in
older files, by SAMPLE_ID at a position all attributes share (perf's evlist id_pos /
is_pos, tools/perf/util/evlist.c); attributes with one identical layout need no id at
all for decoding, because a RAW payload names its event in `common_type`. Layouts that
fit none of these cannot be decoded, and perf refuses them too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest.perf_abi import (
    SAMPLE_ADDR,
    SAMPLE_ID,
    SAMPLE_IDENTIFIER,
    SAMPLE_IP,
    SAMPLE_TID,
    SAMPLE_TIME,
    TYPE_TRACEPOINT,
)
from ingest.perf_header import PerfAttr
from ingest.perf_walk import ID_AT_POS, ID_IDENTIFIER, ID_SINGLE, TRAILER_BITS

#: perf_event_attr clockid values (include/uapi/linux/time.h) → clock names
_CLOCKS = {0: "realtime", 1: "monotonic", 4: "monotonic_raw", 7: "boottime", 11: "tai"}


@dataclass
class WalkerConfig:
    """Per-attribute arrays and id lookup tables, as `walk_records` takes them."""

    attrs: list[PerfAttr]
    sample_type: np.ndarray
    read_format: np.ndarray
    sample_id_all: np.ndarray
    wanted: np.ndarray
    id_keys: np.ndarray
    id_attr: np.ndarray
    id_mode: int
    id_pos: int
    trailer_mode: int
    skipped: np.ndarray


def _id_pos(st: int) -> int:
    """Word index of SAMPLE_ID in a sample body (perf's __perf_evsel__calc_id_pos)."""
    return sum(1 for bit in (SAMPLE_IP, SAMPLE_TID, SAMPLE_TIME, SAMPLE_ADDR) if st & bit)


def walker_config(attrs: list[PerfAttr], page_ids: set[int]) -> WalkerConfig:
    """The walker's view of `attrs`; ValueError when samples cannot be told apart."""
    wanted = [a.type == TYPE_TRACEPOINT and a.config in page_ids for a in attrs]
    types = {a.sample_type for a in attrs}
    id_pos = 0
    if not attrs:
        id_mode = ID_IDENTIFIER  # no attribute yet (pipe mode): no sample is known
    elif len(attrs) == 1:
        id_mode = ID_SINGLE
    elif all(a.sample_type & SAMPLE_IDENTIFIER for a in attrs):
        id_mode = ID_IDENTIFIER
    elif all(a.sample_type & SAMPLE_ID for a in attrs) and \
            len({_id_pos(a.sample_type) for a in attrs}) == 1:
        id_mode, id_pos = ID_AT_POS, _id_pos(attrs[0].sample_type)
    elif len(types) == 1:
        # one layout for all: decode as the first; common_type tells the events apart
        id_mode = ID_SINGLE
        wanted = [any(wanted)]
        attrs = attrs[:1]
    else:
        raise ValueError("cannot tell which event a sample belongs to: the events were "
                         "recorded with different sample layouts and no sample id")
    keys, owner = [], []
    for i, a in enumerate(attrs):
        keys.append(a.ids)
        owner.append(np.full(len(a.ids), i, np.int64))
    id_keys = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
    id_attr = np.concatenate(owner) if owner else np.zeros(0, np.int64)
    order = np.argsort(id_keys, kind="stable")
    with_trailer = [a for a in attrs if a.sample_id_all]
    if not with_trailer:
        trailer_mode = -1
    elif len(with_trailer) == len(attrs) and all(a.sample_type & SAMPLE_IDENTIFIER
                                                  for a in attrs):
        trailer_mode = ID_IDENTIFIER
    elif len({(a.sample_type & TRAILER_BITS, a.sample_id_all) for a in attrs}) == 1:
        trailer_mode = ID_SINGLE
    else:
        trailer_mode = -1  # record times unknown: comms then apply from the start
    n = max(len(attrs), 1)
    pad = [PerfAttr(0, 0, 0, 0, False)] if not attrs else []
    return WalkerConfig(
        attrs=attrs,
        sample_type=np.array([a.sample_type for a in attrs + pad], np.uint64),
        read_format=np.array([a.read_format for a in attrs + pad], np.uint64),
        sample_id_all=np.array([a.sample_id_all for a in attrs + pad], np.bool_),
        wanted=np.array((wanted or [False])[:n], np.bool_),
        id_keys=id_keys[order].astype(np.uint64),
        id_attr=id_attr[order].astype(np.int64),
        id_mode=id_mode,
        id_pos=id_pos,
        trailer_mode=trailer_mode,
        skipped=np.zeros(n, np.int64),
    )


def attr_clock(attrs: list[PerfAttr]) -> str:
    """The clock of the sample times: perf's own (local_clock) unless -k chose one."""
    ids = {a.clockid for a in attrs if a.use_clockid}
    if len(ids) == 1:
        (cid,) = ids
        return _CLOCKS.get(cid, f"clockid {cid}")
    return "perf"
