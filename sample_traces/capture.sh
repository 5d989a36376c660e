#!/usr/bin/env bash
# capture.sh - capture real kmem page-allocator traces for replay's sample_traces.
#
# Usage:
#   capture.sh [options] NAME [-- WORKLOAD_ARGS...]
#
# Runs workload.py (next to this script) with WORKLOAD_ARGS while tracing the
# kmem page events, and writes OUTDIR/NAME.* (see "Outputs").  Must run as
# root.  Only one capture at a time: tracefs is global.
#
# Options:
#   -m MODE    ftrace    (default) tracefs files + `trace-cmd extract`
#              perf      `perf record -a` to NAME.perf.data
#              perf-pipe `perf record -o -` (pipe mode) to NAME.perf-pipe.data
#   -o DIR     output directory (default: current directory)
#   -b KB      ftrace: buffer_size_kb per CPU (default 1024)
#   -e LIST    comma-separated kmem events (default: all six:
#              mm_page_alloc,mm_page_free,mm_page_free_batched,
#              mm_page_pcpu_drain,mm_page_alloc_zone_locked,mm_page_alloc_extfrag)
#   -t         ftrace: set options/record-tgid=1 for the capture (restored after)
#   -T         ftrace: kernel text only (skip trace-cmd extract / report)
#   -C         ftrace: also `trace-cmd convert` NAME.dat to NAME.v6.dat
#              (--file-version 6) and NAME.v7none.dat (version 7, --compression
#              none) and write both reports for each converted file
#   -g         perf: record callchains (perf record -g) and also write
#              NAME.perf-sym.txt (-F comm,tid,cpu,time,event,trace,ip,sym)
#   -p PYTHON  interpreter for workload.py (default /usr/bin/python3 if it
#              exists, else python3; a pyenv shim would add bash noise)
#   -x CMD     extra shell command run in parallel with the workload while
#              tracing (e.g. 'tar c /usr | cat >/dev/null'); may be repeated
#   -M PAGES   perf: mmap data pages per CPU (perf record -m PAGES), against
#              LOST samples in heavy captures
#   -R         skip the `trace-cmd report` outputs (ftrace) or the perf
#              script / perf kmem outputs (perf) - for big captures
#   -z         afterwards compress every NAME*.txt larger than 200 KB with
#              `xz -9 -T1` (the .txt is replaced by .txt.xz)
#   -h         this help
#
# Sequence (ftrace mode): save tracing state (restored by an EXIT trap:
# tracing_on, buffer_size_kb, events/kmem/*/enable, options/record-tgid; the
# buffer is cleared with `echo > trace`), tracing_on=0, set buffer_size_kb,
# clear trace, snapshot /proc/{buddyinfo,zoneinfo,pagetypeinfo} into
# NAME.snapshots/start-*.txt, enable the events, tracing_on=1, run the
# workload, tracing_on=0, snapshot NAME.snapshots/end-*.txt and
# per_cpu/cpuN/stats, `cat trace` > NAME.trace.txt (reading `trace` does not
# consume the buffer), then `trace-cmd extract -o NAME.dat` (consumes it),
# then `trace-cmd report -t -i NAME.dat` > NAME.report-t.txt and
# `trace-cmd report -i NAME.dat` > NAME.report.txt.
#
# Note: `trace-cmd record` does not work on the capture machine (it writes a
# read-only sysctl), hence tracefs + `trace-cmd extract`.
#
# Outputs (ftrace): NAME.trace.txt NAME.dat NAME.report-t.txt NAME.report.txt
#   [-C: NAME.v6.dat NAME.v7none.dat and their .report-t.txt/.report.txt]
# Outputs (perf): NAME.perf.data NAME.perf-script.txt (default fields, incl.
#   callchains with -g) NAME.perf-expected.txt (-F comm,tid,cpu,time,event,
#   trace --ns) [NAME.perf-sym.txt] NAME.perf-kmem-stat.txt (`perf kmem -i F
#   --page stat`) NAME.perf-kmem-stat2.txt (`perf kmem -i F stat --page`;
#   perf 6.1 takes that --page as a stat option and looks for slab events)
# Outputs (perf-pipe): NAME.perf-pipe.data NAME.perf-pipe-expected.txt
# Always: NAME.snapshots/ NAME.log (commands run, their stderr, versions)
#
# Examples (the ones used for the committed samples are in README.md):
#   ./capture.sh -b 1024 -C ftrace-thp -- --thp-mib 32 --hugetlb 8
#   ./capture.sh -m perf -g perf-g -- --thp-mib 16
set -u -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
T=/sys/kernel/tracing
ALL_EVENTS=mm_page_alloc,mm_page_free,mm_page_free_batched,mm_page_pcpu_drain,mm_page_alloc_zone_locked,mm_page_alloc_extfrag

MODE=ftrace OUTDIR=. BUF_KB=1024 EVENTS=$ALL_EVENTS TGID=0 TEXT_ONLY=0
CONVERT=0 CALLGRAPH=0 NO_REPORT=0 COMPRESS=0 MMAP_PAGES=
PYTHON=python3; [ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3
EXTRA=()

usage() { sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

while getopts "m:o:b:e:tTCgp:x:M:Rzh" opt; do
    case $opt in
        m) MODE=$OPTARG ;;
        o) OUTDIR=$OPTARG ;;
        b) BUF_KB=$OPTARG ;;
        e) EVENTS=$OPTARG ;;
        t) TGID=1 ;;
        T) TEXT_ONLY=1 ;;
        C) CONVERT=1 ;;
        g) CALLGRAPH=1 ;;
        p) PYTHON=$OPTARG ;;
        x) EXTRA+=("$OPTARG") ;;
        M) MMAP_PAGES=$OPTARG ;;
        R) NO_REPORT=1 ;;
        z) COMPRESS=1 ;;
        h) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { usage >&2; exit 2; }
NAME=$1; shift
[ "${1:-}" = "--" ] && shift
WL_ARGS=("$@")
case $MODE in ftrace|perf|perf-pipe) ;; *) echo "bad mode $MODE" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
P=$OUTDIR/$NAME
LOG=$P.log
SNAP=$P.snapshots
mkdir -p "$SNAP"
: > "$LOG"

log() { echo "[capture $(date +%T)] $*" | tee -a "$LOG" >&2; }
# run CMD... : log the command, append its stderr to the log
run() { log "+ $*"; "$@" 2> >(tee -a "$LOG" >&2); }

# The traced command: workload.py, run directly, or under `bash -c` together
# with the -x commands (in parallel) if there are any.
WORK_CMD=("$PYTHON" "$HERE/workload.py" "${WL_ARGS[@]+"${WL_ARGS[@]}"}")
WORK=$(printf '%q ' "${WORK_CMD[@]}")
if [ ${#EXTRA[@]} -gt 0 ]; then
    pre=
    for x in "${EXTRA[@]}"; do pre="$pre( $x ) & "; done
    WORK="$pre$WORK; wait"
    WORK_CMD=(bash -c "$WORK")
fi

snapshot() { # start|end
    for f in buddyinfo zoneinfo pagetypeinfo; do
        cat /proc/$f > "$SNAP/$1-$f.txt"
    done
}

{
    echo "# uname -r: $(uname -r)"
    echo "# $(trace-cmd --version 2>&1 | grep -m1 version)"
    echo "# $(perf --version 2>&1)"
    echo "# mode=$MODE buffer_size_kb=$BUF_KB events=$EVENTS tgid=$TGID"
    echo "# traced command: $WORK"
} >> "$LOG"
uname -r > "$SNAP/uname-r.txt"

if [ "$MODE" = ftrace ]; then
    [ -e $T/events/kmem ] || mount -t tracefs nodev $T
    # ---- save state ----
    S_ON=$(cat $T/tracing_on)
    # buffer_size_kb reads e.g. "1408", or "7 (expanded: 1408)" while the
    # ring buffer was never expanded since boot; that state cannot be written
    # back, so the expanded size is restored.  The kernel rounds sizes to
    # whole sub-buffers: 1024 reads back as 1027, 1408 as 1410.
    S_BUF=$(cat $T/buffer_size_kb)
    case $S_BUF in
        *expanded:*) S_BUF=${S_BUF##*expanded: }; S_BUF=${S_BUF%)} ;;
    esac
    S_TGID=$(cat $T/options/record-tgid)
    declare -A S_EV
    for e in ${ALL_EVENTS//,/ }; do S_EV[$e]=$(cat $T/events/kmem/$e/enable); done
    log "saved state: tracing_on=$S_ON buffer_size_kb=$S_BUF record-tgid=$S_TGID" \
        "enable: $(for e in "${!S_EV[@]}"; do printf '%s=%s ' $e "${S_EV[$e]}"; done)"
    restore() {
        echo 0 > $T/tracing_on
        for e in "${!S_EV[@]}"; do echo "${S_EV[$e]}" > $T/events/kmem/$e/enable; done
        echo "$S_TGID" > $T/options/record-tgid
        echo > $T/trace
        echo "$S_BUF" > $T/buffer_size_kb
        echo "$S_ON" > $T/tracing_on
        log "restored tracing state (tracing_on=$S_ON buffer_size_kb=$S_BUF record-tgid=$S_TGID events)"
    }
    trap restore EXIT
    trap 'exit 130' INT TERM

    # ---- set up ----
    echo 0 > $T/tracing_on
    for e in ${ALL_EVENTS//,/ }; do echo 0 > $T/events/kmem/$e/enable; done
    echo "$BUF_KB" > $T/buffer_size_kb || { log "cannot set buffer_size_kb"; exit 1; }
    echo "$TGID" > $T/options/record-tgid
    echo > $T/trace
    log "buffer_size_kb=$(cat $T/buffer_size_kb) trace_clock=$(cat $T/trace_clock)"
    snapshot start
    for e in ${EVENTS//,/ }; do echo 1 > $T/events/kmem/$e/enable; done
    log "enabled: $(cat $T/set_event | tr '\n' ' ')"

    # ---- capture ---- (no logging/forks of our own inside the window)
    log "+ ${WORK_CMD[*]}"
    t0=$EPOCHREALTIME
    echo 1 > $T/tracing_on
    "${WORK_CMD[@]}" 2>> "$LOG"; rc=$?
    echo 0 > $T/tracing_on
    t1=$EPOCHREALTIME
    log "workload rc=$rc, traced for $(echo "$t1 - $t0" | bc) s"
    snapshot end
    for c in $T/per_cpu/cpu*; do
        { echo "== ${c##*/}"; cat "$c/stats"; } >> "$SNAP/end-ring-buffer-stats.txt"
    done
    log "ring buffer stats: $(grep -E '^(==|entries|overrun|dropped)' "$SNAP/end-ring-buffer-stats.txt" | tr '\n' ' ')"

    # ---- save ----
    cat $T/trace > "$P.trace.txt"
    log "kernel text: $(wc -l < "$P.trace.txt") lines; $(grep -m1 entries-in-buffer "$P.trace.txt")"
    if [ "$TEXT_ONLY" = 0 ]; then
        run trace-cmd extract -o "$P.dat" > /dev/null
        reports() { # FILE BASE
            [ "$NO_REPORT" = 1 ] && return
            run trace-cmd report -t -i "$1" > "$2.report-t.txt"
            run trace-cmd report -i "$1" > "$2.report.txt"
        }
        reports "$P.dat" "$P"
        if [ "$CONVERT" = 1 ]; then
            run trace-cmd convert --file-version 6 -i "$P.dat" -o "$P.v6.dat"
            reports "$P.v6.dat" "$P.v6"
            run trace-cmd convert --file-version 7 --compression none -i "$P.dat" -o "$P.v7none.dat"
            reports "$P.v7none.dat" "$P.v7none"
        fi
        for f in "$P"*.dat; do
            { echo "== trace-cmd dump --summary $f"; trace-cmd dump --summary -i "$f" 2>&1; } >> "$LOG"
        done
    fi
    trap - EXIT
    restore

else  # perf / perf-pipe
    EV_ARGS=()
    for e in ${EVENTS//,/ }; do EV_ARGS+=(-e "kmem:$e"); done
    G=(); [ "$CALLGRAPH" = 1 ] && G=(-g)
    [ -n "$MMAP_PAGES" ] && G+=(-m "$MMAP_PAGES")
    snapshot start
    if [ "$MODE" = perf ]; then
        run perf record "${EV_ARGS[@]}" -a "${G[@]+"${G[@]}"}" -o "$P.perf.data" -- "${WORK_CMD[@]}"
        snapshot end
        F=$P.perf.data
        run perf report -i "$F" --header-only > "$SNAP/perf-header.txt"
        run perf report -i "$F" --stats > "$SNAP/perf-stats.txt"
      if [ "$NO_REPORT" = 0 ]; then
        run perf script -i "$F" --ns > "$P.perf-script.txt"
        run perf script -i "$F" -F comm,tid,cpu,time,event,trace --ns > "$P.perf-expected.txt"
        [ "$CALLGRAPH" = 1 ] && run perf script -i "$F" -F comm,tid,cpu,time,event,trace,ip,sym --ns > "$P.perf-sym.txt"
        # -i belongs to `perf kmem`, before the subcommand
        run perf kmem -i "$F" --page stat > "$P.perf-kmem-stat.txt"
        run perf kmem -i "$F" stat --page > "$P.perf-kmem-stat2.txt"
      fi
    else
        run perf record "${EV_ARGS[@]}" -a "${G[@]+"${G[@]}"}" -o - -- "${WORK_CMD[@]}" > "$P.perf-pipe.data"
        snapshot end
        run perf script -i "$P.perf-pipe.data" -F comm,tid,cpu,time,event,trace --ns > "$P.perf-pipe-expected.txt"
    fi
fi

chmod a+r "$P".*data 2>/dev/null   # perf writes its data files 0600

if [ "$COMPRESS" = 1 ]; then
    for f in "$P".*txt; do
        [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 204800 ] && run xz -9 -T1 -f "$f"
    done
fi
log "outputs:"; ls -l "$P".* | tee -a "$LOG" >&2
