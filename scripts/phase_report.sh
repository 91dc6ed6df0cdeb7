#!/usr/bin/env bash
# Phase timing for `make test` and the fresh-machine rehearsal.
#   phase_report.sh --run LOG NAME CMD...   run CMD, print and append "NAME<TAB>seconds<TAB>rc" to LOG
#   phase_report.sh LOG                     print LOG as a table with the total
set -euo pipefail
if [ "${1:-}" = "--run" ]; then
  log=$2 name=$3; shift 3
  start=$(date +%s)
  printf '\033[1;34m== phase %s\033[0m (started %s)\n' "$name" "$(date -u +%H:%M:%S)"
  rc=0; "$@" || rc=$?
  secs=$(( $(date +%s) - start ))
  printf '%s\t%s\t%s\n' "$name" "$secs" "$rc" >>"$log"
  printf '\033[1;34m== phase %s: %d s (%dm%02ds), exit %d\033[0m\n' "$name" "$secs" $((secs / 60)) $((secs % 60)) "$rc"
  exit "$rc"
fi
log=${1:?usage: phase_report.sh LOG}
awk -F'\t' '
  { printf "  %-18s %6d s  %3dm%02ds%s\n", $1, $2, $2 / 60, $2 % 60, ($3 == 0 ? "" : "  (exit " $3 ")"); total += $2 }
  END { printf "  %-18s %6d s  %3dm%02ds\n", "total", total, total / 60, total % 60 }
' "$log"
