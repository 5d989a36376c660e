#!/usr/bin/env bash
# capture_big.sh - record a big real trace (about EVENTS events) for the benchmarks.
#
# Usage: capture_big.sh [EVENTS [SECONDS [NAME]]]   (as root)
#   EVENTS   events to record (default 2000000)
#   SECONDS  the workload's time limit (default 20 s per million events, at least 40 s:
#            on a 2-core VM the workload made 6 M events in 72 s, 3 M in 36 s); the
#            workload runs that long even after the watcher stopped tracing
#   NAME     output name (default big)
#
# The benchmarks' traces (tests/bench/bench_report.py reads big3m and big6m by default):
#   capture_big.sh 3000000 60 big3m
#   capture_big.sh 6000000 120 big6m
#
# Writes $REPLAY_CAPTURES/NAME.dat (trace.dat, what `trace-cmd report` reads),
# NAME.trace.txt (the same ring buffer as ftrace text), NAME.snapshots/ and NAME.log
# ($REPLAY_CAPTURES defaults to ~/replay-captures), replacing any earlier capture of that
# NAME. The capture is capture.sh's ftrace mode (tracefs writes + `trace-cmd extract`;
# `trace-cmd record` does not work on every machine): workload.py runs for SECONDS with
# 200 short `sh` processes beside it, and a watcher turns tracing off once the ring
# buffer holds EVENTS events, so the size does not depend on how busy the machine is
# (the trace holds the whole machine's allocations, other processes' too). The buffer
# (-b, EVENTS/10 + 8 MiB KiB per CPU: 0.6 GiB per CPU for 6 M events) holds ~20 events
# per KiB, so even one CPU's buffer could hold all EVENTS and nothing is overwritten;
# the script fails unless every CPU's overrun is 0, and warns when the workload ran out
# of time before EVENTS (raise SECONDS). Traces are not reproducible bit for bit. Needs
# trace-cmd (apt-get install -y trace-cmd) and tracefs (mounted here if missing).
set -eu -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
USAGE="usage: capture_big.sh [EVENTS [SECONDS [NAME]]] (whole numbers; NAME a file name)"
EVENTS=${1:-2000000}
[[ $EVENTS =~ ^[0-9]+$ ]] || { echo "$USAGE" >&2; exit 2; }
LIMIT=${2:-$(( EVENTS / 50000 > 40 ? EVENTS / 50000 : 40 ))}
NAME=${3:-big}
OUT=${REPLAY_CAPTURES:-$HOME/replay-captures}
T=/sys/kernel/tracing

[[ $LIMIT =~ ^[0-9]+$ && $NAME =~ ^[A-Za-z0-9._-]+$ ]] || { echo "$USAGE" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "capture_big.sh: must run as root" >&2; exit 1; }
command -v trace-cmd > /dev/null || { echo "capture_big.sh: trace-cmd is not installed" >&2; exit 1; }
[ -e "$T/trace" ] || mount -t tracefs nodev "$T"
mkdir -p "$OUT"
cd "$OUT"
rm -rf "$NAME.snapshots" "$NAME.dat" "$NAME.trace.txt" "$NAME.log"
BUF_KB=$(( EVENTS / 10 + 8192 ))  # per CPU: the whole target fits on one CPU's buffer
WATCH="for i in \$(seq $(( LIMIT * 5 ))); do sleep 0.2; n=\$(awk '/^entries:/ { s += \$2 } END { print s }' $T/per_cpu/cpu*/stats); \
[ \"\$n\" -ge $EVENTS ] && { echo 0 > $T/tracing_on; break; }; done"
"$HERE/capture.sh" -b "$BUF_KB" -R \
    -x 'for i in $(seq 200); do /bin/sh -c "ls -l /usr/lib > /dev/null"; done' \
    -x "$WATCH" \
    "$NAME" -- --duration "$LIMIT" --thp-mib 64 --mthp-kb 64 --io-mib 32 --sock-mib 16
STATS=$NAME.snapshots/end-ring-buffer-stats.txt
GOT=$(awk '/^entries:/ { s += $2 } END { print s }' "$STATS")
echo "capture_big.sh: wrote $OUT/$NAME.dat ($(stat -c %s "$NAME.dat") bytes); $GOT events;" \
     "$(grep -m1 entries-in-buffer "$NAME.trace.txt")"
if awk '/^overrun:/ && $2 != 0 { bad = 1 } END { exit !bad }' "$STATS"; then
    echo "capture_big.sh: the ring buffer overwrote events (overrun in $OUT/$STATS): raise -b" >&2
    exit 1
fi
[ "$GOT" -ge "$EVENTS" ] ||
    echo "capture_big.sh: warning: only $GOT of $EVENTS events in $LIMIT s; raise SECONDS" >&2
