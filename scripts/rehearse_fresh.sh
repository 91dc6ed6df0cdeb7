#!/usr/bin/env bash
# Fresh-machine rehearsal: as close to a new machine as one machine allows.
#   - a fresh clone of the committed main branch in a temporary directory (its own .venv, .cache)
#   - HOME pointed at an empty directory, so ~/.ansible (ansible-test's caches, get-pip) and the
#     pip and Playwright caches start empty
#   - the local base images untagged, so `make prereqs` rebuilds them with debootstrap
# then the README's two commands exactly as written, `make up` and `make test`, each timed, and
# `make down`. The times (and `make test`'s per-phase times) go to docs/benchmarks/fresh.md.
# What one machine cannot undo: Debian packages stay installed and dockerd keeps running.
#   scripts/rehearse_fresh.sh [--ref BRANCH] [--keep-images] [--report FILE]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ref=main keep_images=false report="$repo/docs/benchmarks/fresh.md"
while [ $# -gt 0 ]; do
  case "$1" in
    --ref) ref=$2; shift 2 ;;
    --keep-images) keep_images=true; shift ;;
    --report) report=$2; shift 2 ;;
    *) echo "usage: $0 [--ref BRANCH] [--keep-images] [--report FILE]" >&2; exit 2 ;;
  esac
done
log() { printf '\033[1;35m[rehearsal]\033[0m %s\n' "$*" >&2; }

if docker ps -a --format '{{.Names}}' 2>/dev/null | grep -qE '^(lab-|molecule-)'; then
  echo "lab or Molecule containers exist (docker ps -a): a new machine has none. Remove them first (make down)." >&2
  exit 2
fi

work=$(mktemp -d /var/tmp/votingapp-fresh.XXXXXX)
clone="$work/votingapp" home="$work/home"
mkdir -p "$home"
git clone -q --branch "$ref" "$repo" "$clone"
commit=$(git -C "$clone" rev-parse --short HEAD)
log "fresh clone of $ref at $commit in $clone, HOME=$home"

if ! $keep_images && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  # Untag, never force-delete: containers of other work keep their image.
  mapfile -t images < <(docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^votingapp[-/]' || true)
  if [ ${#images[@]} -gt 0 ]; then
    log "untagging ${#images[@]} votingapp images so they are rebuilt"
    for image in "${images[@]}"; do
      docker rmi "$image" >/dev/null 2>&1 || log "kept $image: a container still uses it"
    done
  fi
fi

# pyenv's shims find their root through HOME unless PYENV_ROOT says where it is.
pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
run_env=(env -u XDG_CACHE_HOME -u XDG_CONFIG_HOME -u VIRTUAL_ENV HOME="$home" PYENV_ROOT="$pyenv_root")
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
phases="$work/phases.tsv"
: >"$phases"
status=passed
for step in up test down; do
  if ! "$repo/scripts/phase_report.sh" --run "$phases" "make $step" \
      "${run_env[@]}" make -C "$clone" "$step" >"$work/make-$step.log" 2>&1; then
    status="failed at make $step"
    tail -40 "$work/make-$step.log" >&2
    [ "$step" = down ] || "${run_env[@]}" make -C "$clone" down >"$work/make-down.log" 2>&1 || true
    break
  fi
done
log "$status; logs in $work"

{
  echo "# Fresh-machine rehearsal"
  echo
  echo "\`scripts/rehearse_fresh.sh\` (\`make rehearse-fresh\`): a fresh clone of \`$ref\` (commit $commit), HOME an"
  echo "empty directory (no ~/.ansible, no pip or Playwright cache), its own .venv, the votingapp base"
  echo "images untagged$($keep_images && echo ' (kept this time: --keep-images)') so \`make prereqs\` rebuilds them; then the README's"
  echo "commands as written. Debian packages stay installed and dockerd keeps running (one machine cannot"
  echo "undo those). Started $started on $(nproc) CPUs, load average $load_start. Result: **$status**."
  echo
  echo "| command | seconds | minutes | exit |"
  echo "|---|---|---|---|"
  awk -F'\t' '{ printf "| `%s` | %d | %dm%02ds | %d |\n", $1, $2, $2 / 60, $2 % 60, $3 }' "$phases"
  if [ -s "$clone/.cache/test-phases.tsv" ]; then
    echo
    echo "Phases of \`make test\` (from its own timing, \`.cache/test-phases.tsv\`):"
    echo
    echo "| phase | seconds | minutes |"
    echo "|---|---|---|"
    awk -F'\t' '{ printf "| %s | %d | %dm%02ds |\n", $1, $2, $2 / 60, $2 % 60 }' "$clone/.cache/test-phases.tsv"
  fi
} >"$report"
log "report: $report"
[ "$status" = passed ]
