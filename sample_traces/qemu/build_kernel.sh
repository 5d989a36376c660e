#!/bin/bash
# Build a small 6.12 kernel (Debian's linux-source-6.12) whose buddy allocator stops at
# max order ORDER, for the ground-truth samples (docs/ground_truth.md).
#
#   ./build_kernel.sh ORDER [WORKDIR]      (default $QEMU_WORK, else ~/qemu-cap)
#
# x86 has no ARCH_FORCE_MAX_ORDER Kconfig symbol (arm64 and powerpc do), so
# include/linux/mmzone.h's "#ifndef CONFIG_ARCH_FORCE_MAX_ORDER / #define MAX_PAGE_ORDER
# 10" always gives 10: this script appends that symbol to the unpacked source's
# arch/x86/Kconfig (once), then builds tinyconfig + kernel.config +
# CONFIG_ARCH_FORCE_MAX_ORDER=ORDER out of tree in WORKDIR/build-maxorder-ORDER.
# Prints the bzImage path.  Needs: apt-get install linux-source-6.12 flex bison bc libelf-dev.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
order=${1:?usage: build_kernel.sh ORDER [WORKDIR]}
work=$(realpath -m "${2:-${QEMU_WORK:-$HOME/qemu-cap}}")
src=$work/linux-source-6.12
build=$work/build-maxorder-$order
mkdir -p "$work"
[ -f "$src/Makefile" ] || tar xJf /usr/src/linux-source-6.12.tar.xz -C "$work"
grep -q "^config ARCH_FORCE_MAX_ORDER" "$src/arch/x86/Kconfig" || cat >> "$src/arch/x86/Kconfig" <<'KCONFIG'

config ARCH_FORCE_MAX_ORDER
	int "Maximum buddy allocator order (MAX_PAGE_ORDER)"
	range 1 10
	default "10"
	help
	  Added by replay's sample_traces/qemu/build_kernel.sh, not upstream: the
	  largest order the buddy allocator serves.
KCONFIG
mkdir -p "$build"
make -s -C "$src" O="$build" tinyconfig
{ cat "$here/kernel.config"; echo "CONFIG_ARCH_FORCE_MAX_ORDER=$order"; } >> "$build/.config"
make -s -C "$src" O="$build" olddefconfig
# every option asked for must have survived olddefconfig (a missing dependency drops it)
missing=0
while IFS= read -r line; do
    case "$line" in
        CONFIG_*=*) grep -qx "$line" "$build/.config" || { echo "not set: $line"; missing=1; } ;;
        "# CONFIG_"*" is not set") sym=${line#\# }; sym=${sym%% *}
            if grep -q "^$sym=" "$build/.config"; then echo "set: $sym"; missing=1; fi ;;
    esac
done < <(cat "$here/kernel.config"; echo "CONFIG_ARCH_FORCE_MAX_ORDER=$order")
[ $missing = 0 ] || exit 1
make -s -C "$src" O="$build" -j"$(nproc)" bzImage
echo "$build/arch/x86/boot/bzImage"
