#!/usr/bin/env bash
# capture_big.sh - record a big real trace (about EVENTS events) for the benchmarks.
#
# Usage: capture_big.sh [EVENTS [SECONDS]]   (as root; default 2000000 events, at most 40 s)
#
# Writes $REPLAY_CAPTURES/big.dat (trace.dat, what `trace-cmd report` reads),
# big.trace.txt (the same ring buffer as ftrace text), big.snapshots/ and big.log
# ($REPLAY_CAPTURES defaults to ~/replay-captures); tests/bench/bench_report.py and
# bench_engine.py read them from there by default. The capture is capture.sh's ftrace
# mode (tracefs writes + `trace-cmd extract`; `trace-cmd record` does not work on every
# machine): workload.py runs for at most SECONDS with 200 short `sh` processes beside
# it, and a watcher turns tracing off once the ring buffer holds EVENTS events, so the
# size does not depend on how busy the machine is (the trace holds the whole machine's
# allocations, other processes' too). The buffer (-b) holds ~30 events per KiB, far
# more than EVENTS, so nothing is overwritten: check "overrun: 0" in big.log. Traces are
# not reproducible bit for bit. Needs trace-cmd (apt-get install -y trace-cmd) and
# tracefs (mounted here if missing).
set -eu -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
EVENTS=${1:-2000000}
LIMIT=${2:-40}
OUT=${REPLAY_CAPTURES:-$HOME/replay-captures}
T=/sys/kernel/tracing

[ "$(id -u)" = 0 ] || { echo "capture_big.sh: must run as root" >&2; exit 1; }
command -v trace-cmd > /dev/null || { echo "capture_big.sh: trace-cmd is not installed" >&2; exit 1; }
[ -e "$T/trace" ] || mount -t tracefs nodev "$T"
mkdir -p "$OUT"
cd "$OUT"
rm -rf big.snapshots big.dat big.trace.txt big.log
BUF_KB=$(( EVENTS / 10 + 8192 ))  # per CPU: the whole target fits on one CPU's buffer
WATCH="for i in \$(seq $(( LIMIT * 5 ))); do sleep 0.2; n=\$(awk '/^entries:/ { s += \$2 } END { print s }' $T/per_cpu/cpu*/stats); \
[ \"\$n\" -ge $EVENTS ] && { echo 0 > $T/tracing_on; break; }; done"
"$HERE/capture.sh" -b "$BUF_KB" -R \
    -x 'for i in $(seq 200); do /bin/sh -c "ls -l /usr/lib > /dev/null"; done' \
    -x "$WATCH" \
    big -- --duration "$LIMIT" --thp-mib 64 --mthp-kb 64 --io-mib 32 --sock-mib 16
echo "capture_big.sh: wrote $OUT/big.dat ($(stat -c %s big.dat) bytes);" \
     "$(grep -m1 entries-in-buffer big.trace.txt)"
