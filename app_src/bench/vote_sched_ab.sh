#!/usr/bin/env bash
# A/B the vote service's POST /api/vote under several gunicorn configurations, alternating runs
# (A, B, A, B, ...) on the same machine, and say where each worker's time went.
#
#   app_src/bench/vote_sched_ab.sh [SECONDS] [ROUNDS] NAME=CLASS[,ENV=VALUE...] ...
#   e.g. app_src/bench/vote_sched_ab.sh 5 3 gevent=gevent gthread=gthread gevent4=gevent,GUNICORN_WORKERS=4
#
# A configuration whose first ENV is SESSION=own runs the service in a session of its own (setsid,
# as the test harness did: Linux's autogroup scheduler then gives that session its own CPU
# share, apart from wrk's and Redis's); the default SESSION=shared keeps it in this script's
# session with wrk and Redis, so the processes under test share one CPU share, as they would
# on a host of their own.
#
# Everything on 127.0.0.1: one redis-server and one vote service per configuration, started here
# and stopped at the end (only the processes this script started). Each run is one bounded wrk run
# (-t2 -c16, SECONDS long) with app_src/bench/vote.lua. Per run it prints the 1-minute load
# average, req/s, p99, and from /proc/PID/task/*/schedstat of the service's worker processes:
# CPU time on a core (run_ms), time spent runnable but waiting for a core (runq_ms), both per
# request, and the involuntary context switches of the workers (preempted while runnable).
# A worker that is runnable all the time (run_ms + runq_ms ~ SECONDS x workers) yet mostly in
# the run queue is starved of CPU by the machine's other load, not slow in its own code.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
APP=$(dirname "$HERE")
PY=${PYTHON:-python}
SECONDS_PER_RUN=${1:-5}
ROUNDS=${2:-3}
shift 2 || true
[ $# -ge 1 ] || set -- gevent=gevent gthread=gthread
command -v wrk >/dev/null || { echo "wrk is not installed (make prereqs)" >&2; exit 2; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    pkill -TERM -P "$pid" 2>/dev/null || true # gunicorn workers (their arbiter stops them too)
    kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 1
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)

declare -A PORT MASTER
NAMES=()
for spec in "$@"; do
  name=${spec%%=*}
  rest=${spec#*=}
  IFS=, read -r -a parts <<<"$rest"
  class=${parts[0]}
  extra=("${parts[@]:1}")
  launcher=()
  if [ "${extra[0]:-}" = SESSION=own ]; then launcher=(setsid); fi
  if [ "${extra[0]:-}" = SESSION=own ] || [ "${extra[0]:-}" = SESSION=shared ]; then extra=("${extra[@]:1}"); fi
  port=$(free_port)
  (cd "$APP" && exec env REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT" PORT="$port" BIND_ADDRESS=127.0.0.1 \
    GUNICORN_WORKER_CLASS="$class" LOG_LEVEL=WARNING VOTE_STREAM="ab-$name" "${extra[@]}" \
    "${launcher[@]}" "$PY" -m votingapp vote >"$WORK/$name.log" 2>&1) &
  PIDS+=($!)
  PORT[$name]=$port
  MASTER[$name]=$!
  NAMES+=("$name")
done

for name in "${NAMES[@]}"; do
  for _ in $(seq 120); do
    curl -fs "http://127.0.0.1:${PORT[$name]}/readyz" >/dev/null 2>&1 && break
    sleep 0.5
  done
  curl -fs "http://127.0.0.1:${PORT[$name]}/readyz" >/dev/null || { cat "$WORK/$name.log" >&2; exit 1; }
done

# sum over every thread of the gunicorn workers (children of the arbiter $1): run_ns wait_ns nonvoluntary_switches
sched() {
  local run=0 wait=0 nvcs=0 a b n w t
  for w in $(pgrep -P "$1" || true); do
    for t in /proc/"$w"/task/*; do
      read -r a b _ 2>/dev/null <"$t/schedstat" || continue
      run=$((run + a)); wait=$((wait + b))
      n=$(awk '/^nonvoluntary_ctxt_switches/ {print $2}' "$t/status" 2>/dev/null || true)
      nvcs=$((nvcs + ${n:-0}))
    done
  done
  echo "$run $wait $nvcs"
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs; wrk -t2 -c16 -d${SECONDS_PER_RUN}s"
for round in $(seq "$ROUNDS"); do
  for name in "${NAMES[@]}"; do
    read -r r0 w0 n0 <<<"$(sched "${MASTER[$name]}")"
    out=$(timeout $((${SECONDS_PER_RUN%.*} + 15)) wrk -t2 -c16 -d"${SECONDS_PER_RUN}s" --timeout 5s \
      -s "$HERE/vote.lua" "http://127.0.0.1:${PORT[$name]}" -- "ab$round" 2>&1 || true)
    read -r r1 w1 n1 <<<"$(sched "${MASTER[$name]}")"
    json=$(grep WRK_JSON <<<"$out" | sed 's/^WRK_JSON //')
    "$PY" - "$round" "$name" "$json" "$SECONDS_PER_RUN" "$r0" "$r1" "$w0" "$w1" "$n0" "$n1" <<'EOF'
import json, os, sys
rnd, name, raw, secs, r0, r1, w0, w1, n0, n1 = sys.argv[1:]
w = json.loads(raw) if raw else {"requests": 0, "p99_us": 0, "non2xx": 0, "socket_errors": 0}
n = max(1, w["requests"])
run, wait = (int(r1) - int(r0)) / 1e6, (int(w1) - int(w0)) / 1e6
print(f"round {rnd} {name:>10}: load {os.getloadavg()[0]:5.2f}  {w['requests'] / float(secs):7.0f} req/s  "
      f"p99 {w['p99_us'] / 1000:6.1f} ms  errors {w['non2xx'] + w['socket_errors']}  "
      f"run {run:6.0f} ms ({run * 1000 / n:4.0f} us/req)  runq {wait:6.0f} ms ({wait * 1000 / n:5.0f} us/req)  "
      f"preempted {int(n1) - int(n0)}", flush=True)
EOF
  done
done
