#!/bin/bash
# Ground truth for a lower max order (docs/ground_truth.md): build the 6.12 kernel at max
# order 5 and at 10 (the control; same config otherwise), then for each
#   - a traced run of the samples' workload -> ../maxorderN-6.12.{trace.txt.xz,snapshots,log}
#     (also tracing kmem:mm_alloc_contig_migrate_range_info, alloc_contig_range's report);
#   - two untraced timing runs of the hugetlb pool alone (tracing would slow the paths
#     being timed) -> timing/timing[-fill]-maxorderN.{log,snapshots}: nr_hugepages 0 -> 64
#     -> 0, five times, on an idle guest and with 384 MiB of tmpfs data kept in memory.
#
#   ./capture_maxorder.sh [WORKDIR]      (default $QEMU_WORK, else ~/qemu-cap)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(realpath -m "${1:-${QEMU_WORK:-$HOME/qemu-cap}}")
WORKLOAD=(--loops 6 --thp-mib 32 --hugetlb 8)
TIMING=(--phases hugetlb --hugetlb 64 --loops 5)
initrd=$work/initrd-builtin.gz
"$here/make_initramfs.sh" "$initrd"
for order in 5 10; do
    "$here/build_kernel.sh" "$order" "$work"
    kernel=$work/build-maxorder-$order/arch/x86/boot/bzImage
    "$here/run_guest.sh" -e kmem/mm_alloc_contig_migrate_range_info "maxorder$order-6.12" \
        "$kernel" "$initrd" -- "${WORKLOAD[@]}"
    "$here/run_guest.sh" -n -o "$here/timing" "timing-maxorder$order" "$kernel" "$initrd" \
        -- "${TIMING[@]}"
    "$here/run_guest.sh" -n -o "$here/timing" "timing-fill-maxorder$order" "$kernel" "$initrd" \
        -- "${TIMING[@]}" --fill-mib 384
done
