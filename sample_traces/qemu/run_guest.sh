#!/bin/bash
# Boot a kernel under qemu (TCG) with the capture initramfs, trace the workload and
# store the result as a sample next to this folder:
#   ../NAME.trace.txt.xz   the kernel's own text (cat /sys/kernel/tracing/trace), xz -9
#   ../NAME.snapshots/     start-/end- buddyinfo, pagetypeinfo, zoneinfo, meminfo, vmstat,
#                          end-ring-buffer-stats.txt, uname-r.txt
#   ../NAME.log            the qemu command line and the guest's console (workload log)
#
#   ./run_guest.sh [-m MEM] [-s SMP] [-b BUF_KB] [-e EVENTS] [-n] [-o OUTDIR] NAME VMLINUZ INITRAMFS [-- WORKLOAD ARGS]
#
# Defaults: -m 1G -s 2 -b 16384 (ring buffer KiB per CPU), OUTDIR = sample_traces.
# -e group/event,... traces these events too; -n traces nothing (a timing run: only
# NAME.log and NAME.snapshots are written; the guest's RAM is preallocated on the host,
# -mem-prealloc, so that no first touch of guest memory costs a host page fault).
# Needs qemu-system-x86 and xz; no KVM (-accel tcg).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mem=1G smp=2 buf=16384 extra= trace=1 outdir=$(dirname "$here")
while getopts "m:s:b:e:no:" opt; do
    case $opt in
        m) mem=$OPTARG ;; s) smp=$OPTARG ;; b) buf=$OPTARG ;; o) outdir=$OPTARG ;;
        e) extra=$OPTARG ;; n) trace=0 ;;
        *) sed -n '2,15p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 3 ] || { sed -n '2,15p' "$0"; exit 2; }
name=$1 kernel=$2 initrd=$3
shift 3
[ "${1:-}" = "--" ] && shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
truncate -s 512M "$work/out.img"

cmd=(qemu-system-x86_64 -accel tcg -m "$mem" -smp "$smp" -no-reboot -display none
     -monitor none -serial "file:$work/console.log"
     -kernel "$kernel" -initrd "$initrd"
     -drive "file=$work/out.img,format=raw,if=virtio"
     -append "console=ttyS0 panic=-1 quiet no_timer_check REPLAY_BUF_KB=$buf REPLAY_TRACE=$trace REPLAY_EXTRA_EVENTS=$extra -- $*")
[ "$trace" = 1 ] || cmd+=(-mem-prealloc)
echo "+ ${cmd[*]}" > "$work/qemu.cmd"
start=$(date +%s)
timeout 3600 "${cmd[@]}"
echo "qemu exited after $(( $(date +%s) - start )) s"

mkdir -p "$work/out"
tar xf "$work/out.img" -C "$work/out" 2>/dev/null && [ -d "$work/out/snapshots" ] ||
    { tr -d '\r' < "$work/console.log"; echo "run_guest.sh: no capture on the disk" >&2; exit 1; }
mkdir -p "$outdir"
snap="$outdir/$name.snapshots"
rm -rf "$snap"
cp -r "$work/out/snapshots" "$snap"
[ "$trace" = 0 ] || xz -9 -T1 -c "$work/out/trace.txt" > "$outdir/$name.trace.txt.xz"
{ cat "$work/qemu.cmd"; echo "# kernel: $(basename "$kernel") sha256 $(sha256sum < "$kernel" | cut -c1-64)";
  echo "# ring buffer: buffer_size_kb $(cat "$work/out/buffer_size_kb.txt")"; echo "# console:";
  tr -d '\r' < "$work/console.log"; echo "# dmesg:"; cat "$work/out/dmesg.txt"; } > "$outdir/$name.log"
[ "$trace" = 0 ] || echo "$outdir/$name.trace.txt.xz: $(stat -c %s "$outdir/$name.trace.txt.xz") bytes, $(grep -vc '^#' "$work/out/trace.txt") events"
grep '^workload:' "$work/out/workload.log" || true
