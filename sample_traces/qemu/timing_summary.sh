#!/bin/sh
# Per-page time of each nr_hugepages write in workload logs (run_guest.sh's NAME.log), and
# the /proc/vmstat migration/compaction counters those writes moved, summed:
#   ./timing_summary.sh timing/*.log
for log in "$@"; do
    awk -v name="$(basename "$log" .log)" '
    /workload: hugetlb: (grow|shrink)/ {
        what = $3
        for (i = 1; i <= NF; i++) {
            if ($i == "per") per = substr($(i - 2), 2) * 1000
            if (split($i, kv, "=") == 2 && kv[1] ~ /^(pgmigrate_success|compact_isolated)$/)
                sum[what, kv[1]] += kv[2]
        }
        times[what] = times[what] sprintf(" %.3f", per)
        n[what]++
    }
    END {
        for (w in times)
            printf "%s %s: ms per 2 MiB page:%s; pgmigrate_success %d, compact_isolated %d (%d writes)\n",
                name, w, times[w], sum[w, "pgmigrate_success"], sum[w, "compact_isolated"], n[w]
    }' "$log"
done
