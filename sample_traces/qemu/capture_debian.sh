#!/bin/bash
# Recapture the debian-6.1 and debian-5.10 samples (see README.md in this folder).
#
#   ./capture_debian.sh [WORKDIR]      (default /work/qemu-cap; get_kernels.sh fills it)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(realpath -m "${1:-/work/qemu-cap}")
[ -d "$work/x/k61" ] && [ -d "$work/x/k510" ] || "$here/get_kernels.sh" "$work"
WORKLOAD=(--loops 6 --thp-mib 32 --hugetlb 8)
for pair in debian-6.1:k61 debian-5.10:k510; do
    name=${pair%%:*} dir=$work/x/${pair#*:}
    "$here/make_initramfs.sh" "$work/initrd-${pair#*:}.gz" "$(ls -d "$dir"/lib/modules/*)"
    "$here/run_guest.sh" -m 1G -s 2 "$name" "$(ls "$dir"/boot/vmlinuz-*)" \
        "$work/initrd-${pair#*:}.gz" -- "${WORKLOAD[@]}"
done
