#!/bin/bash
# Recapture the debian-6.1, debian-6.1-4g and debian-5.10 samples (README.md here).
# 1 GiB guests have zones DMA and DMA32 only; the 4 GiB one (qemu's pc machine puts
# the RAM above 3 GiB at 4 GiB) has a Normal zone too.
#
#   ./capture_debian.sh [WORKDIR]      (default $QEMU_WORK, else ~/qemu-cap; get_kernels.sh fills it)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(realpath -m "${1:-${QEMU_WORK:-$HOME/qemu-cap}}")
[ -d "$work/x/k61" ] && [ -d "$work/x/k510" ] || "$here/get_kernels.sh" "$work"
WORKLOAD=(--loops 6 --thp-mib 32 --hugetlb 8)
for run in debian-6.1:k61:1G debian-6.1-4g:k61:4G debian-5.10:k510:1G; do
    IFS=: read -r name kdir mem <<< "$run"
    dir=$work/x/$kdir
    "$here/make_initramfs.sh" "$work/initrd-$kdir.gz" "$(ls -d "$dir"/lib/modules/*)"
    "$here/run_guest.sh" -m "$mem" -s 2 "$name" "$(ls "$dir"/boot/vmlinuz-*)" \
        "$work/initrd-$kdir.gz" -- "${WORKLOAD[@]}"
done
