#!/bin/sh
# /init of the capture initramfs (busybox sh). Traces the six kmem page events around
# one run of /workload, with /proc snapshots before and after, and writes everything
# as a tar archive onto the raw virtio disk run_guest.sh attaches (/dev/vda), then
# reboots (qemu -no-reboot exits).
#
# Kernel command line (run_guest.sh sets it; the kernel hands unknown NAME=VALUE words to
# init as environment): REPLAY_BUF_KB=N (per-CPU ring buffer), REPLAY_EXTRA_EVENTS=
# group/event,... (traced besides the six kmem page events), REPLAY_TRACE=0 (no events
# enabled: timing runs), and after "--" the workload's arguments ("$@").
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mkdir -p /out/snapshots
T=/sys/kernel/tracing
mount -t tracefs tracefs $T 2>/dev/null || { mount -t debugfs debugfs /sys/kernel/debug; T=/sys/kernel/debug/tracing; }
# tracefs' files may appear after init starts: 6.x creates them from a workqueue
# (tracer_init_tracefs -> tracerfs_init_work), which a bare initramfs can outrun
for i in $(seq 30); do [ -f $T/events/kmem/mm_page_alloc/enable ] && break; sleep 1; done
[ -f $T/events/kmem/mm_page_alloc/enable ] || { echo "init: no kmem events in $T"; dmesg; reboot -f; }
ip link set lo up

# virtio disk drivers when they are modules (Debian's kernels); load order in /modules.order
for m in $(cat /modules.order 2>/dev/null); do
    [ -f /modules/$m.ko ] && insmod /modules/$m.ko
done
DISK=/dev/vda
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b $DISK ] && break; sleep 1; done
[ -b $DISK ] || { echo "init: no $DISK"; reboot -f; }

THP=/sys/kernel/mm/transparent_hugepage
[ -d $THP ] && echo madvise > $THP/enabled && echo madvise > $THP/defrag

snap() {  # snap start|end
    for f in buddyinfo pagetypeinfo zoneinfo meminfo vmstat; do
        cat /proc/$f > /out/snapshots/$1-$f.txt
    done
}

EVENTS="mm_page_alloc mm_page_free mm_page_free_batched mm_page_pcpu_drain mm_page_alloc_zone_locked mm_page_alloc_extfrag"
echo 0 > $T/tracing_on
echo "${REPLAY_BUF_KB:-16384}" > $T/buffer_size_kb
echo > $T/trace
snap start
if [ "${REPLAY_TRACE:-1}" = 1 ]; then
    for e in $EVENTS; do echo 1 > $T/events/kmem/$e/enable; done
    for e in $(echo "${REPLAY_EXTRA_EVENTS:-}" | tr , ' '); do echo 1 > $T/events/$e/enable; done
fi
echo 1 > $T/tracing_on
/workload "$@" > /out/workload.log 2>&1
echo "exit $?" >> /out/workload.log
echo 0 > $T/tracing_on
snap end
for c in $T/per_cpu/cpu*; do echo "${c##*/}"; cat $c/stats; done > /out/snapshots/end-ring-buffer-stats.txt
cat $T/buffer_size_kb > /out/buffer_size_kb.txt
uname -r > /out/snapshots/uname-r.txt
cat /proc/cmdline > /out/cmdline.txt
cat $T/trace > /out/trace.txt
dmesg > /out/dmesg.txt
cat /out/workload.log
tar cf $DISK -C /out .
sync
echo "init: capture written"
reboot -f
