# usage: awk -f stats.awk FILE  (kernel trace text, trace-cmd report, or perf script text)
/^#/ || /^cpus=/ { next }
{
  ev = ""
  for (i = 1; i <= NF; i++) if ($i ~ /mm_page[a-z_]*:$/) { ev = $i; break }
  if (ev == "") next
  sub(/^kmem:/, "", ev); sub(/:$/, "", ev)
  n[ev]++; total++
  if (ev == "mm_page_alloc" || ev == "mm_page_free") {
    if (match($0, / order=[0-9]+/)) { o = substr($0, RSTART + 7, RLENGTH - 7); h[ev " order=" o]++ }
  }
}
END {
  printf "total %d\n", total
  for (e in n) printf "%-28s %d\n", e, n[e]
  for (k in h) printf "%-28s %d\n", k, h[k]
}
