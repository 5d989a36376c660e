#!/bin/bash
# Build the capture initramfs: busybox-static, the static workload (workload.c),
# init.sh as /init and, for a modular kernel, its virtio disk modules.
#
#   ./make_initramfs.sh OUT.cpio.gz [MODULES_DIR]
#
# MODULES_DIR is a kernel's lib/modules/RELEASE (from the extracted .deb, see
# get_kernels.sh); leave it out for a kernel with virtio built in (build_kernel.sh).
# Needs: busybox-static, gcc (static glibc), cpio, gzip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "$1")
mods=${2:-}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage"/{bin,dev,proc,sys,tmp,out,modules}
cp /bin/busybox "$stage/bin/busybox"
for applet in $("$stage/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$stage/bin/$applet"
done
gcc -static -O2 -Wall -Wextra -o "$stage/workload" "$here/workload.c"
install -m 755 "$here/init.sh" "$stage/init"

# Load order: each module after the ones it needs (virtio_pci_*_dev exist from 5.14/5.15).
order="virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk"
if [ -n "$mods" ]; then
    for m in $order; do
        f=$(find "$mods" -name "$m.ko*" | head -1)
        [ -n "$f" ] || continue
        case "$f" in
            *.ko.xz) xz -dc "$f" > "$stage/modules/$m.ko" ;;
            *.ko.zst) zstd -dqc "$f" > "$stage/modules/$m.ko" ;;
            *) cp "$f" "$stage/modules/$m.ko" ;;
        esac
        echo "$m" >> "$stage/modules.order"
    done
fi
(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 > "$out"
echo "$out: $(stat -c %s "$out") bytes, modules: $(cat "$stage/modules.order" 2>/dev/null | tr '\n' ' ')"
