"""PERF_RECORD_KSYMBOL: frames inside BPF programs named as `perf script` names them.

`perf-bpf.perf.data.xz` is real: perf recorded while one BPF program was loaded from
before the start (perf synthesizes its KSYMBOL) and another was loaded and unloaded during
the recording (the kernel's KSYMBOL register and unregister records). No page allocation
ran inside a BPF program, so the frames are synthetic: `with_bpf_frames` points one frame
of a few real samples into each program, and `perf script` on that rewritten file is the
oracle (committed; also run live when perf is installed).
"""

from __future__ import annotations

import lzma
import re
import shutil
import struct
import subprocess
from pathlib import Path

import duckdb
import pytest

from replay.dataset import read_meta
from ingest.errors import InputError
from replay.ingestion import ingest
from tests.conftest import SAMPLES
from tests.test_perf_bad_input import data_section, records

SOURCE = SAMPLES / "perf-bpf.perf.data.xz"
ORACLE = SAMPLES / "perf-bpf.bpf-frames.txt.xz"
KALLSYMS = SAMPLES / "perf.kallsyms.xz"
NAME = "bpf_prog_59f4a931744dcdc6_replay_test"  # both programs: same code and name
SYNTHESIZED = 0xFFFFFFFFC0000650  # loaded before perf started, 20 bytes
LIVE = 0xFFFFFFFFC000068C  # loaded at LIVE_FROM, unloaded at LIVE_UNTIL (ns)
LIVE_FROM, LIVE_UNTIL = 14096627623043, 14096927891167
KSYMBOL, SAMPLE = 17, 9
# every sample of this file: IDENTIFIER, IP, TID, TIME, CPU, PERIOD, CALLCHAIN (nr, ips)
TIME_AT, NR_AT = 8 + 24, 8 + 48
FRAME = re.compile(r"^\t\s*(?P<addr>[0-9a-f]+) (?P<sym>.*) \((?P<dso>.*)\)$")


def with_bpf_frames(data: bytes) -> tuple[bytes, int]:
    """`data` with the third callchain entry (second kernel frame) of the first three
    samples set inside the synthesized program, and of the first three samples while the
    live one was loaded set inside that; also how many samples were changed."""
    out = bytearray(data)
    early, live = 0, 0
    for pos, rtype, _ in records(data, *data_section(data)):
        if rtype == SAMPLE and struct.unpack_from("<Q", out, pos + NR_AT)[0] > 4:
            (ts,) = struct.unpack_from("<Q", out, pos + TIME_AT)
            frame = pos + NR_AT + 8 + 16
            if early < 3:
                struct.pack_into("<Q", out, frame, SYNTHESIZED + 8)
                early += 1
            elif live < 3 and LIVE_FROM < ts < LIVE_UNTIL:
                struct.pack_into("<Q", out, frame, LIVE + 0x10)
                live += 1
    return bytes(out), early + live


def kernel_frames_of_script(lines) -> list[tuple[int, str, str]]:
    """(addr, sym, dso) of every named kernel-half frame of a default perf script output
    (user stacks hold junk words that look like kernel addresses: perf calls them
    `[unknown] ([unknown])`)."""
    out = []
    for line in lines:
        m = FRAME.match(line.rstrip("\n"))
        if m and int(m["addr"], 16) >= 1 << 63 and m["dso"] != "[unknown]":
            out.append((int(m["addr"], 16), m["sym"], m["dso"]))
    return out


def kernel_frames_of_dataset(ds: Path) -> list[tuple[int, str, str]]:
    return duckdb.sql(f"""
        SELECT s.addr, s.symbol, s.dso
        FROM '{ds}/events.parquet' e JOIN '{ds}/stacks.parquet' s USING (stack_id)
        WHERE s.context = 'kernel' AND s.dso IS NOT NULL ORDER BY e.seq, s.depth""").fetchall()


@pytest.fixture(scope="module")
def rewritten(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bpf") / "bpf-frames.perf.data"
    data, n = with_bpf_frames(lzma.decompress(SOURCE.read_bytes()))
    assert n == 6
    path.write_bytes(data)
    return path


def test_real_ksymbol_records_are_read(tmp_path):
    meta = read_meta(ingest(SOURCE, tmp_path / "bpf.replay", quiet=True, kallsyms=KALLSYMS))
    assert meta["perf"]["records_by_type"]["17"] == 3  # synthesized, register, unregister
    assert meta["stacks"]["ksymbols"] == 2  # the two registered ranges
    assert meta["stacks"]["unknown_kernel_frames"] == 0 and meta["malformed"]["total"] == 0


def test_frames_in_bpf_programs_equal_perf_script(rewritten, tmp_path):
    ds = ingest(rewritten, tmp_path / "r.replay", quiet=True, kallsyms=KALLSYMS)
    with lzma.open(ORACLE, "rt") as f:
        expected = kernel_frames_of_script(f)
    got = kernel_frames_of_dataset(ds)
    assert len(got) == len(expected) > 5000
    assert got == expected
    assert read_meta(ds)["stacks"]["unknown_kernel_frames"] == 0
    bpf = [f for f in got if f[2] == NAME]
    assert sorted({f[1] for f in bpf}) == [f"{NAME}+0x10", f"{NAME}+0x8"] and len(bpf) == 6


def test_without_kallsyms_bpf_frames_are_still_named(rewritten, tmp_path, monkeypatch):
    import ingest.perf_symbols as perf_symbols

    monkeypatch.setattr(perf_symbols, "_this_machine",
                        lambda *_: perf_symbols.SymbolSource(None, None, "not this machine"))
    ds = ingest(rewritten, tmp_path / "n.replay", quiet=True)
    named = duckdb.sql(f"SELECT DISTINCT symbol FROM '{ds}/stacks.parquet' "
                       "WHERE symbol IS NOT NULL ORDER BY 1").fetchall()
    assert named == [(f"{NAME}+0x10",), (f"{NAME}+0x8",)]
    assert read_meta(ds)["stacks"]["why_no_symbols"] == "not this machine"


def test_short_ksymbol_record(tmp_path):
    """A KSYMBOL record too short for its fields: counted malformed; --strict: an error."""
    data = bytearray(lzma.decompress(SOURCE.read_bytes()))
    pos, size = next((pos, size) for pos, rtype, size in records(data, *data_section(data))
                     if rtype == KSYMBOL)
    # the record becomes a 16-byte one followed by an unknown record filling its place
    struct.pack_into("<HH", data, pos + 6, 16, 0)
    struct.pack_into("<IHH", data, pos + 16, 200, 0, size - 16)
    path = tmp_path / "short.perf.data"
    path.write_bytes(bytes(data))
    meta = read_meta(ingest(path, tmp_path / "ok", quiet=True, kallsyms=KALLSYMS))
    assert meta["malformed"]["total"] == 1
    assert meta["malformed"]["examples"][0].startswith(f"offset {pos}: KSYMBOL record")
    assert meta["stacks"]["ksymbols"] == 1
    with pytest.raises(InputError, match=f"offset {pos}: KSYMBOL record of 16 bytes"):
        ingest(path, tmp_path / "strict", quiet=True, strict=True)
    assert not (tmp_path / "strict").exists()


def test_ksymbol_range_past_the_address_space(tmp_path):
    """A KSYMBOL whose addr + len passes 2^64 (found by the perf-dir fuzz campaign, an
    OverflowError when the ranges were built): counted malformed; --strict: an error."""
    data = bytearray(lzma.decompress(SOURCE.read_bytes()))
    pos = next(pos for pos, rtype, _ in records(data, *data_section(data)) if rtype == KSYMBOL)
    struct.pack_into("<QI", data, pos + 8, (1 << 64) - 16, 4096)
    path = tmp_path / "wrap.perf.data"
    path.write_bytes(bytes(data))
    meta = read_meta(ingest(path, tmp_path / "ok", quiet=True, kallsyms=KALLSYMS))
    assert meta["malformed"]["total"] == 1
    assert "past the end of the address space" in meta["malformed"]["examples"][0]
    with pytest.raises(InputError, match=f"offset {pos}: KSYMBOL range 0xfffffffffffffff0"):
        ingest(path, tmp_path / "strict", quiet=True, strict=True)


@pytest.mark.skipif(shutil.which("perf") is None, reason="perf is not installed")
def test_live_perf_script(rewritten):
    out = subprocess.run(["perf", "script", "-i", str(rewritten), "--ns"],
                         capture_output=True, text=True, check=True)
    frames = [f for f in kernel_frames_of_script(out.stdout.splitlines()) if f[2] == NAME]
    with lzma.open(ORACLE, "rt") as f:
        assert frames == [f for f in kernel_frames_of_script(f) if f[2] == NAME]
    assert len(frames) == 6
