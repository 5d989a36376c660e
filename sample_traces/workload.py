#!/usr/bin/env python3
"""Page-allocator workload used to capture the sample traces in this folder.

Plain python3, standard library only.  Run it as root while kmem page events
are traced (see capture.sh).  Every pass runs the same phases in the same
order, so captures are deterministic-ish (the kernel and other processes add
their own noise):

  1. thp     - mmap a private anonymous region (--thp-mib MiB, plus 2 MiB of
               slack so at least --thp-mib/2 aligned 2 MiB extents exist),
               madvise(MADV_HUGEPAGE), touch every 4 KiB page, then punch a
               4 KiB hole in every other 2 MiB extent (MADV_DONTNEED splits
               the huge page) and unmap.  Gives order-9 allocations/frees
               (GFP_TRANSHUGE*) plus order-0 page-table pages.
               /sys/kernel/mm/transparent_hugepage/enabled is switched to
               "madvise" if it is "never", and restored afterwards.
               --mthp-kb K additionally enables the K-KiB mTHP size
               (hugepages-<K>kB/enabled=madvise) for the run and touches four
               extra 1 MiB MADV_HUGEPAGE regions (too small for a PMD THP),
               giving allocations of order log2(K/4); restored afterwards.
  2. hugetlb - write --hugetlb N to /proc/sys/vm/nr_hugepages and then the
               original value back: N order-9 allocations (__GFP_COMP|
               __GFP_THISNODE|...) and N order-9 frees.
  3. fork    - --forks children via os.fork() (each _exit(0)s at once) and
               --children `python3 -c` subprocesses: order-2 kernel stacks
               (unless vmap stacks are used), page tables, task structs...
  4. file    - write --io-mib MiB to a temporary file in --dir, fsync, drop it
               from the page cache with posix_fadvise(DONTNEED), read it
               back, unlink.  Page-cache and block-layer allocations.
  5. socket  - a `python3 -c` child echoes nothing but reads everything
               sent to it over loopback TCP; the parent sends --sock-mib MiB
               in 64 KiB writes: skb page frags (order-3 when available).
  6. dentries - os.stat() names that do not exist under --dir: every lookup
               leaves a negative dentry in the dentry slab, whose pages are
               MIGRATE_RECLAIMABLE (order 0, 21 dentries per page).  Lookups
               go on, in chunks of 21*64, until the count of Reclaimable
               pageblocks in /proc/pagetypeinfo ("Number of blocks type")
               has grown by --dentry-blocks (default 1), i.e. until the
               reclaimable free lists (buddy and per-CPU) ran dry and the
               allocator stole movable pageblocks, which is what
               mm_page_alloc_extfrag (alloc_migratetype=2) reports; at most
               21 * (free Reclaimable + per-CPU pages + 4096) lookups.  The
               dentries stay cached (some MiB per pass) until reclaimed.
  7. ptables - (not run by default) mmap a MAP_NORESERVE anonymous address
               range and read one byte every 2 MiB: each read maps the
               shared zero page but needs a new page-table page (unmovable,
               order 0).  The number of page-table pages is the current
               count of free Unmovable pages in /proc/pagetypeinfo plus
               --pt-extra (default 4096), or
               --pt-gib*512 if --pt-gib is given.  Once the unmovable free
               lists are used up the allocator steals from movable
               pageblocks, which is what mm_page_alloc_extfrag reports
               (each pass steals more blocks, hence the adaptive size).

Passes repeat --loops times, and keep repeating until --duration seconds
have elapsed (0 = exactly --loops passes).  Phase selection: --phases
thp,hugetlb,fork,file,socket,dentries,ptables (default: all but
ptables, which costs ~2 events per page-table page).

Exit status 0 on success; all sysfs/procfs knobs are restored even on error.
"""

import argparse
import mmap
import os
import socket
import subprocess
import sys
import tempfile
import time

THP_DIR = "/sys/kernel/mm/transparent_hugepage"
NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"
PAGE = 4096
HPAGE = 2 * 1024 * 1024
MADV_DONTNEED = getattr(mmap, "MADV_DONTNEED", 4)
MADV_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", 14)
MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)


def log(msg):
    print(f"[workload {time.monotonic():.3f}] {msg}", file=sys.stderr, flush=True)


def read_sel(path):
    """Return the [selected] word of a sysfs choice file, or the content."""
    with open(path) as f:
        text = f.read().strip()
    if "[" in text:
        return text[text.index("[") + 1:text.index("]")]
    return text


def write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


class Knobs:
    """Remember original values of sysfs/procfs knobs and restore them."""

    def __init__(self):
        self.saved = []

    def set(self, path, value):
        try:
            old = read_sel(path)
        except OSError as e:
            log(f"cannot read {path}: {e}")
            return False
        if old != str(value):
            try:
                write(path, value)
            except OSError as e:
                log(f"cannot set {path}={value}: {e}")
                return False
            self.saved.append((path, old))
            log(f"set {path}: {old} -> {value}")
        return True

    def restore(self):
        while self.saved:
            path, old = self.saved.pop()
            try:
                write(path, old)
                log(f"restored {path}={old}")
            except OSError as e:
                log(f"cannot restore {path}={old}: {e}")


def phase_thp(args):
    size = args.thp_mib * 1024 * 1024
    m = mmap.mmap(-1, size + HPAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                  prot=mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        m.madvise(MADV_HUGEPAGE)
        for off in range(0, size + HPAGE, PAGE):
            m[off] = 1
        # Split every other huge page by zapping one 4 KiB page inside it.
        for off in range(HPAGE, size, 2 * HPAGE):
            m.madvise(MADV_DONTNEED, off + PAGE, PAGE)
        try:
            with open("/proc/self/smaps_rollup") as f:
                anon = [l.strip() for l in f if l.startswith("AnonHugePages")]
            log(f"thp: {args.thp_mib} MiB touched, {anon}")
        except OSError:
            pass
    finally:
        m.close()
    if args.mthp_kb:
        small = []
        for _ in range(4):
            r = mmap.mmap(-1, 1 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                          prot=mmap.PROT_READ | mmap.PROT_WRITE)
            r.madvise(MADV_HUGEPAGE)
            for off in range(0, 1 << 20, PAGE):
                r[off] = 1
            small.append(r)
        for r in small:
            r.close()
        log(f"thp: 4 x 1 MiB regions for {args.mthp_kb} KiB mTHP")


def phase_hugetlb(args):
    with open(NR_HUGEPAGES) as f:
        orig = int(f.read().strip())
    try:
        write(NR_HUGEPAGES, orig + args.hugetlb)
        with open(NR_HUGEPAGES) as f:
            got = int(f.read().strip())
        log(f"hugetlb: nr_hugepages {orig} -> {got}")
    finally:
        write(NR_HUGEPAGES, orig)


def phase_fork(args):
    for _ in range(args.forks):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    code = "import os; x = bytearray(1 << 20); os.getpid()"
    for _ in range(args.children):
        subprocess.run([sys.executable, "-c", code], check=True)
    log(f"fork: {args.forks} forks, {args.children} python children")


def phase_file(args):
    chunk = bytes(range(256)) * (1024 * 4)  # 1 MiB, deterministic content
    fd, path = tempfile.mkstemp(prefix="replay-workload-", dir=args.dir)
    try:
        with os.fdopen(fd, "wb") as f:
            for _ in range(args.io_mib):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        total = 0
        with open(path, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                total += len(b)
        log(f"file: wrote+read {total} bytes in {args.dir}")
    finally:
        os.unlink(path)


SOCK_SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); n = 0
while True:
    b = c.recv(1 << 16)
    if not b: break
    n += len(b)
c.sendall(str(n).encode()); c.close()
"""


def phase_socket(args):
    srv = subprocess.Popen([sys.executable, "-c", SOCK_SERVER], stdout=subprocess.PIPE)
    try:
        port = int(srv.stdout.readline())
        payload = b"\x5a" * (64 * 1024)
        with socket.create_connection(("127.0.0.1", port)) as c:
            for _ in range(args.sock_mib * 16):
                c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            got = c.recv(64)
        log(f"socket: sent {args.sock_mib} MiB, server got {got.decode()} bytes")
    finally:
        srv.wait(timeout=60)


def free_pages_of_type(mtype):
    """Sum of free pages of migratetype mtype over all zones (/proc/pagetypeinfo)."""
    total = 0
    with open("/proc/pagetypeinfo") as f:
        for line in f:
            if f"type {mtype:>12} " in line and "zone" in line:
                counts = line.split(mtype, 1)[1].split()
                total += sum(int(c) << order for order, c in enumerate(counts))
    return total


def phase_ptables(args):
    if args.pt_gib:
        npages = args.pt_gib * 512
    else:
        free = free_pages_of_type("Unmovable")
        npages = min(free + args.pt_extra, 131072)
        log(f"ptables: {free} free unmovable pages, using {npages}")
    span = npages * HPAGE
    m = mmap.mmap(-1, span, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE,
                  prot=mmap.PROT_READ)
    try:
        total = 0
        for off in range(0, span, HPAGE):
            total += m[off]
        log(f"ptables: {span // HPAGE} page-table pages for {span >> 30} GiB")
    finally:
        m.close()


def pcp_pages():
    """Pages on the per-CPU free lists (all zones and migratetypes)."""
    total = 0
    with open("/proc/zoneinfo") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "count:":
                total += int(parts[1])
    return total


def reclaimable_blocks():
    """Number of Reclaimable pageblocks, all zones (/proc/pagetypeinfo)."""
    total, cols = 0, None
    with open("/proc/pagetypeinfo") as f:
        for line in f:
            if line.startswith("Number of blocks type"):
                cols = line.split()[4:]
            elif cols and line.startswith("Node") and "zone" in line:
                vals = line.split()[4:]
                if "Reclaimable" in cols and len(vals) == len(cols):
                    total += int(vals[cols.index("Reclaimable")])
    return total


def phase_dentries(args):
    free = free_pages_of_type("Reclaimable")
    pcp = pcp_pages()
    limit = 21 * (free + pcp + 4096)
    blocks0 = reclaimable_blocks()
    prefix = os.path.join(args.dir, f"replay-neg-{os.getpid()}-{time.monotonic_ns()}-")
    n = 0
    while n < limit and reclaimable_blocks() < blocks0 + args.dentry_blocks:
        for i in range(n, n + 21 * 64):
            try:
                os.stat(prefix + str(i))
            except FileNotFoundError:
                pass
        n += 21 * 64
    log(f"dentries: {free} free reclaimable + {pcp} pcp pages; {n} negative dentries; "
        f"reclaimable pageblocks {blocks0} -> {reclaimable_blocks()}")


PHASES = {"thp": phase_thp, "hugetlb": phase_hugetlb, "fork": phase_fork,
          "file": phase_file, "socket": phase_socket,
          "dentries": phase_dentries, "ptables": phase_ptables}


DEFAULT_PHASES = "thp,hugetlb,fork,file,socket,dentries"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=0.0,
                   help="keep repeating passes until this many seconds elapsed (0: just --loops passes)")
    p.add_argument("--loops", type=int, default=1, help="minimum number of passes (default 1)")
    p.add_argument("--thp-mib", type=int, default=64, help="THP region size in MiB (default 64)")
    p.add_argument("--mthp-kb", type=int, default=0,
                   help="also enable this mTHP size (e.g. 64) with madvise for the run (default 0: off)")
    p.add_argument("--hugetlb", type=int, default=16, help="hugetlb pages to add and remove (default 16)")
    p.add_argument("--forks", type=int, default=8, help="os.fork() children (default 8)")
    p.add_argument("--children", type=int, default=2, help="python3 -c subprocesses (default 2)")
    p.add_argument("--io-mib", type=int, default=8, help="file I/O size in MiB (default 8)")
    p.add_argument("--sock-mib", type=int, default=8, help="loopback TCP bytes in MiB (default 8)")
    p.add_argument("--pt-gib", type=int, default=0,
                   help="address space in GiB for the page-table phase (default 0: adaptive)")
    p.add_argument("--pt-extra", type=int, default=4096,
                   help="adaptive page-table phase: page-table pages beyond the free unmovable pages (default 4096)")
    p.add_argument("--dentry-blocks", type=int, default=1,
                   help="dentries phase: stop once this many more pageblocks are Reclaimable (default 1)")
    p.add_argument("--dir", default="/var/tmp", help="directory for the temporary file (default /var/tmp)")
    p.add_argument("--phases", default=DEFAULT_PHASES,
                   help="comma-separated subset/order of: " + ",".join(PHASES) + " (default " + DEFAULT_PHASES + ")")
    args = p.parse_args()
    phases = [x for x in args.phases.split(",") if x]
    for x in phases:
        if x not in PHASES:
            p.error(f"unknown phase {x!r}")

    knobs = Knobs()
    try:
        if "thp" in phases:
            if read_sel(f"{THP_DIR}/enabled") == "never":
                knobs.set(f"{THP_DIR}/enabled", "madvise")
            if read_sel(f"{THP_DIR}/defrag") == "never":
                knobs.set(f"{THP_DIR}/defrag", "madvise")
            if args.mthp_kb:
                knobs.set(f"{THP_DIR}/hugepages-{args.mthp_kb}kB/enabled", "madvise")
        start = time.monotonic()
        n = 0
        while n < args.loops or (args.duration and time.monotonic() - start < args.duration):
            for x in phases:
                PHASES[x](args)
            n += 1
        log(f"done: {n} passes in {time.monotonic() - start:.2f} s")
    finally:
        knobs.restore()
    return 0


if __name__ == "__main__":
    sys.exit(main())
