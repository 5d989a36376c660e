#!/usr/bin/env bash
# Measure what a page costs the kernel's two ways of making a large contiguous block.
#
#   2 MB hugetlb pages (order 9 <= MAX_PAGE_ORDER): served by the buddy allocator
#       (alloc_buddy_hugetlb_folio -> __folio_alloc)
#   1 GB hugetlb pages (order 18 > MAX_PAGE_ORDER, "gigantic"): served by
#       alloc_contig_pages, which scans the zone for a free-or-movable range, isolates
#       it and migrates every page in use out of it
#
# Each pool is grown from 0 by writing nr_hugepages and timed; /proc/vmstat's
# pgmigrate_success gives the pages migrated meanwhile. Runs twice: on the machine as it
# is ("idle"), then after writing --fill-mib MiB of movable tmpfs pages in 1 MiB files
# and deleting every other file ("filled"): half the fill stays, spread over memory, so
# no free 1 GB range is left and alloc_contig_pages has pages to migrate. The pools and the fill
# are put back as they were on exit. Needs root and hugetlbfs sysctls; changes nothing
# else. Output: one line per measurement, whitespace-separated (see the header line).
#
# Usage: sudo ./measure_contig_cost.sh [--pages2m N] [--pages1g N] [--fill-mib N] [--reps N]
set -euo pipefail

PAGES2M=512       # 1 GiB of 2 MB pages per run
PAGES1G=2         # 2 GiB of 1 GB pages per run
FILL_MIB=8192     # movable pages written for the "filled" runs; every other MiB is kept
REPS=3

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --pages2m) PAGES2M=$2; shift 2 ;;
        --pages1g) PAGES1G=$2; shift 2 ;;
        --fill-mib) FILL_MIB=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument $1" >&2; exit 2 ;;
    esac
done

SYS2M=/proc/sys/vm/nr_hugepages
SYS1G=/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages
[ "$(id -u)" = 0 ] || { echo "error: needs root (writes $SYS2M)" >&2; exit 1; }
for f in "$SYS2M" "$SYS1G"; do
    [ -w "$f" ] || { echo "error: $f: not writable (no hugetlbfs of that size?)" >&2; exit 1; }
done

ORIG2M=$(cat "$SYS2M")
ORIG1G=$(cat "$SYS1G")
FILL_DIR=$(mktemp -d /dev/shm/measure_contig.XXXXXX)
restore() {
    rm -rf "$FILL_DIR"
    echo "$ORIG1G" > "$SYS1G"
    echo "$ORIG2M" > "$SYS2M"
}
trap restore EXIT

vmstat() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }

# measure LABEL SYSCTL PAGES ORDER: grow the pool from 0 to PAGES, print one line
measure() {
    local label=$1 sysctl=$2 want=$3 order=$4
    echo 0 > "$sysctl"
    local mig0 scan0 t0 t1 mig1 scan1 got
    mig0=$(vmstat pgmigrate_success)
    scan0=$(vmstat compact_migrate_scanned)
    t0=$(date +%s%N)
    echo "$want" > "$sysctl"
    t1=$(date +%s%N)
    got=$(cat "$sysctl")
    mig1=$(vmstat pgmigrate_success)
    scan1=$(vmstat compact_migrate_scanned)
    local pages=$(( got << order ))
    local ns=$(( t1 - t0 ))
    awk -v l="$label" -v o="$order" -v w="$want" -v g="$got" -v ns="$ns" -v p="$pages" \
        -v m=$(( mig1 - mig0 )) -v s=$(( scan1 - scan0 )) 'BEGIN {
        printf "%-18s %5d %6d %6d %12d %10d %10d %12.1f\n", l, o, w, g, ns, m, s,
               p ? ns / p : 0 }'
    echo 0 > "$sysctl"
}

fill() {
    # movable shmem pages in 1 MiB files; every other one deleted to leave holes
    local i
    for ((i = 0; i < FILL_MIB; i++)); do
        head -c 1048576 /dev/zero > "$FILL_DIR/$i"
    done
    for ((i = 0; i < FILL_MIB; i += 2)); do
        rm -f "$FILL_DIR/$i"
    done
}

echo "# $(uname -r) $(nproc) CPUs, $(awk '/MemTotal/ {print $2}' /proc/meminfo) kB," \
     "THP $(cat /sys/kernel/mm/transparent_hugepage/enabled), $(date -u +%FT%TZ)"
echo "# label            order   want    got     ns_total   migrated  compact_scanned  ns_per_page"
for ((r = 1; r <= REPS; r++)); do
    measure "idle-2M-buddy" "$SYS2M" "$PAGES2M" 9
    measure "idle-1G-contig" "$SYS1G" "$PAGES1G" 18
done
fill
for ((r = 1; r <= REPS; r++)); do
    measure "filled-2M-buddy" "$SYS2M" "$PAGES2M" 9
    measure "filled-1G-contig" "$SYS1G" "$PAGES1G" 18
done
