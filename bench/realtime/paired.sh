#!/usr/bin/env bash
# Paired A/B of the mutation-to-client loop (see paired.py): two trees of Depot, each with its own
# database (depot_bench_rt_a / _b), Redis database (13 / 14), server port (8311 / 8312) and Celery
# worker, up at the same time; no-op jobs alternate between them.
#
#   bench/realtime/paired.sh /path/to/tree-A /path/to/tree-B [JOBS]    # JOBS per side, 200
#   BENCH_TRACE=1 bench/realtime/paired.sh …     # both sides traced; a trace_report per side
#
# Each tree needs its .venv (a symlink to this one will do) and bench/realtime/run.sh. Both
# servers are pinned to CPU 0 and the driver to CPU 1, as in run.sh. Stops and drops everything
# it started, also on failure.
set -euo pipefail
A="$(cd "$1" && pwd)"; B="$(cd "$2" && pwd)"; JOBS="${3:-200}"
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${OUT:-/tmp/depot-paired-$(date +%H%M%S)}"
mkdir -p "$OUT"

side() { # name tree db redis-db port -> runs tree's run.sh with that side's environment
  local name=$1 tree=$2 db=$3 rdb=$4 port=$5; shift 5
  BENCH_DB=$db BENCH_REDIS_URL="redis://127.0.0.1:6379/$rdb" BENCH_PORT=$port \
    BENCH_RUN_DIR="$OUT/run-$name" OUT="$OUT/out-$name" "$tree/bench/realtime/run.sh" "$@"
}
cleanup() {
  side A "$A" depot_bench_rt_a 13 8311 stop || true
  side B "$B" depot_bench_rt_b 14 8312 stop || true
  side A "$A" depot_bench_rt_a 13 8311 teardown || true
  side B "$B" depot_bench_rt_b 14 8312 teardown || true
}
trap cleanup EXIT
for s in "A $A depot_bench_rt_a 13 8311" "B $B depot_bench_rt_b 14 8312"; do
  # shellcheck disable=SC2086
  side $s setup >"$OUT/setup-${s%% *}.log" 2>&1
  # shellcheck disable=SC2086
  side $s start
  # shellcheck disable=SC2086
  side $s worker
done
if [ "${START:-noop}" = retry ]; then  # each side's cancelled bench.noop jobs, by its own tree
  for s in "A $A depot_bench_rt_a 13" "B $B depot_bench_rt_b 14"; do
    set -- $s
    ws=$("$ROOT/.venv/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['workspaces'][9]['pk'])" "$OUT/run-$1/seed.json")
    (cd "$2" && echo "{\"cmd\": \"cancelled_noops\", \"ws\": $ws, \"count\": $((JOBS + 5))}" \
      | DJANGO_SETTINGS_MODULE=bench.realtime.settings PYTHONPATH="$2" \
        DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$3" REDIS_URL="redis://127.0.0.1:6379/$4" \
        REDIS_KEY_PREFIX=depotbenchrt DEPOT_QUEUE_PREFIX=depotbenchrt BENCH_RUN_DIR="$OUT/run-$1" \
        "$2/.venv/bin/python" -m bench.realtime.producer) \
      | "$ROOT/.venv/bin/python" -c "import json,sys; print(json.dumps(json.loads(sys.stdin.readline())['ids']))" \
      >"$OUT/run-$1/cancelled.json"
  done
fi
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$ROOT" && taskset -c 1 "$ROOT/.venv/bin/python" -m bench.realtime.paired \
  --a "8311:$OUT/run-A/seed.json" --b "8312:$OUT/run-B/seed.json" --jobs "$JOBS" \
  --start "${START:-noop}" --out "$OUT/paired.json")
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); results in $OUT"
if [ "${BENCH_TRACE:-0}" = 1 ]; then  # each side's trace, read with that side's jobs
  for s in A B; do
    echo "--- side $s"
    (cd "$ROOT" && "$ROOT/.venv/bin/python" -m bench.realtime.trace_report "$OUT/run-$s/trace" \
      "$OUT/jobs-$s.json" --slowest 0)
  done
fi
