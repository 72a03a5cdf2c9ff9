#!/usr/bin/env bash
# Issue 3: Depot's GraphQL over HTTP against a plain Django view (FLOOR) and strawberry-django's
# default optimizer, side by side in one run. See README.md.
#
#   bench/http/run.sh                 # everything, about 4-5 minutes: create depot_bench, migrate,
#                                     # seed, start 3 servers, verify, wrk, stop, drop the database
#   REPS=3 DURATION=8 WARMUP=2 CONNS=4 bench/http/run.sh      # the knobs (defaults shown)
#   ONLY=floor,depot bench/http/run.sh                          # a subset (first = reference)
#   KEEP_DB=1 bench/http/run.sh       # leave the database (and .run/) for profiling / reruns
#   WHATIF=node-id-pk,async-static bench/http/run.sh   # add a 4th contender, depot-whatif:
#                                     # Depot with bench/http/whatif.py's patches (see PROFILE.md)
#
#   bench/http/run.sh profile         # setup, start, verify, then py-spy under wrk for each
#                                     # contender and query -> results/profile/summary.md
#   WHATIF=... bench/http/run.sh profile   # the same with depot-whatif (bench/http/whatif.py)
#
# Pieces, for working by hand:  run.sh setup | start | verify | bench | profile_live | stop | teardown
#
# Needs Postgres on 127.0.0.1:5432 (user postgres, trust), Redis on 127.0.0.1:6379, wrk and
# taskset on PATH, and Depot's .venv (`make install`). Outputs go to results/ (http.md, http.json,
# verify.txt, verify.json, env.txt); logs and pids to .run/.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY="$ROOT/.venv/bin/python"
UVICORN="$ROOT/.venv/bin/uvicorn"
RUN="${BENCH_RUN_DIR:-$HERE/.run}"
OUT="${OUT:-$HERE/results}"
PGH="${BENCH_DB_HOST:-127.0.0.1}"; PGP="${BENCH_DB_PORT:-5432}"; PGU="${BENCH_DB_USER:-postgres}"
DB="${BENCH_DB:-depot_bench}"
SERVER_CPU="${SERVER_CPU:-0}"; LOAD_CPU="${LOAD_CPU:-1}"
export BENCH_RUN_DIR="$RUN" SERVER_CPU

# Depot in services mode, production settings. No S3: the queries ask for no URL.
export DATABASE_URL="postgresql://$PGU@$PGH:$PGP/$DB"
export REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}"
export REDIS_KEY_PREFIX=depotbench DEPOT_QUEUE_PREFIX=depotbench
export DEPOT_ENV=production DJANGO_SECRET_KEY="bench-not-a-secret-$(hostname)-0123456789"
export DJANGO_ALLOWED_HOSTS=127.0.0.1 DEPOT_VAR_DIR="$RUN/var" DEPOT_LOG_LEVEL=WARNING
# Depot still counts every request against its rate limits (Redis), as in production; the
# limits are only raised so that wrk is not answered with 429.
export DEPOT_RATE_LIMIT_TOKEN=1000000000/60 DEPOT_RATE_LIMIT_IP=1000000000/60
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# name port settings-module asgi-app (each its own uvicorn process, one worker, on SERVER_CPU)
SPECS="
depot 8201 bench.http.settings_depot project.asgi:application
floor 8202 bench.http.settings_peers bench.http.asgi_peers:application
strawberry-default 8203 bench.http.settings_peers bench.http.asgi_peers:application
depot-whatif 8204 bench.http.settings_depot project.asgi:application
depot-uncached 8205 bench.http.settings_depot project.asgi:application
"

mkdir -p "$RUN/logs" "$RUN/pids" "$OUT"

setup() {
  dropdb -h "$PGH" -p "$PGP" -U "$PGU" --if-exists "$DB"
  createdb -h "$PGH" -p "$PGP" -U "$PGU" "$DB"
  (cd "$ROOT" && DJANGO_SETTINGS_MODULE=bench.http.settings_depot "$PY" manage.py migrate -v0 --noinput)
  (cd "$ROOT" && DJANGO_SETTINGS_MODULE=bench.http.settings_depot "$PY" -m bench.http.seed)
}

teardown() {
  dropdb -h "$PGH" -p "$PGP" -U "$PGU" --if-exists "$DB" && echo "dropped database $DB"
}

start_one() {
  local name=$1 port=$2 settings=$3 app=$4
  if [ -f "$RUN/pids/$name.pid" ] && kill -0 "$(cat "$RUN/pids/$name.pid")" 2>/dev/null; then
    echo "$name already running"; return; fi
  if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is taken by another process" >&2; return 1; fi
  local whatif=""; [ "$name" = depot-whatif ] && whatif="$WHATIF"
  # depot-uncached is Depot with its read cache off: every request runs the query.
  local read_cache="${DEPOT_READ_CACHE_SECONDS:-30}"; [ "$name" = depot-uncached ] && read_cache=0
  ( cd "$ROOT" && BENCH_WHATIF="$whatif" DEPOT_READ_CACHE_SECONDS="$read_cache" DJANGO_SETTINGS_MODULE="$settings" exec taskset -c "$SERVER_CPU" "$UVICORN" "$app" \
      --host 127.0.0.1 --port "$port" --workers 1 --loop uvloop --http httptools \
      --lifespan off --no-access-log --log-level warning --timeout-keep-alive 30 \
      >"$RUN/logs/$name.log" 2>&1 ) &
  echo $! >"$RUN/pids/$name.pid"
  for _ in $(seq 1 300); do
    if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "started $name pid=$(cat "$RUN/pids/$name.pid") port=$port cpu=$SERVER_CPU"; return; fi
    if ! kill -0 "$(cat "$RUN/pids/$name.pid")" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "FAILED to start $name, see $RUN/logs/$name.log" >&2; cat "$RUN/logs/$name.log" >&2; return 1
}

start() {
  local only="${ONLY:-}"; local names=" ${only//,/ } "
  while read -r name port settings app; do
    [ -z "$name" ] && continue
    if [ "$name" = depot-whatif ] && [ -z "${WHATIF:-}" ]; then continue; fi
    if [ -z "${ONLY:-}" ] || [[ "$names" == *" $name "* ]]; then start_one "$name" "$port" "$settings" "$app"; fi
  done <<<"$SPECS"
}

stop() {
  for f in "$RUN"/pids/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      echo "stopped $(basename "$f" .pid) pid=$pid"
    fi
    rm -f "$f"
  done
}

only_args() {
  if [ -n "${ONLY:-}" ]; then echo "--only $ONLY"
  elif [ -n "${WHATIF:-}" ]; then echo "--only floor,strawberry-default,depot,depot-whatif"; fi
}

verify() {
  # shellcheck disable=SC2046
  (cd "$HERE/harness" && "$PY" verify.py $(only_args) --out "$OUT/verify.json") | tee "$OUT/verify.txt"
}

bench() {
  # shellcheck disable=SC2046
  (cd "$HERE/harness" && "$PY" http_bench.py $(only_args) --reps "${REPS:-3}" \
    --duration "${DURATION:-8}" --warmup "${WARMUP:-2}" --connections "${CONNS:-4}" \
    --wrk-cpu "$LOAD_CPU" --verify "$OUT/verify.json" --out "$OUT/http") | tee "$RUN/http_bench.log"
}

envinfo() {
  { echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) x $(nproc)"
    echo "python: $("$PY" -V)"
    echo "postgres: $(psql -h "$PGH" -p "$PGP" -U "$PGU" -tAc 'show server_version' postgres)"
    echo "redis: $(redis-cli -h 127.0.0.1 info server | grep redis_version | tr -d '\r')"
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "depot: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet 2>/dev/null || echo ' + uncommitted changes')"
    echo "--- .venv"
    "$PY" -c 'import importlib.metadata as m; print("\n".join(sorted(d.metadata["Name"] + "==" + d.version for d in m.distributions())))' \
      | grep -iE '^(django|strawberry|graphql-core|uvicorn|uvloop|httptools|psycopg|asgiref|channels|redis)[-_a-z]*=='
  } >"$OUT/env.txt"
}

tools() {
  # py-spy for `profile`, in a bench-only venv (never in Depot's .venv)
  if [ ! -x "$HERE/.venv-tools/bin/py-spy" ]; then
    python3 -m venv "$HERE/.venv-tools" && "$HERE/.venv-tools/bin/pip" install -q py-spy==0.4.3
  fi
}

profile_live() {
  tools
  # shellcheck disable=SC2046
  (cd "$HERE/harness" && "$PY" profile_live.py $(only_args) --duration "${PROFILE_DURATION:-12}" \
    --wrk-cpu "$LOAD_CPU" --out "$OUT/profile") | tee "$RUN/profile.log"
}

profile() {
  trap 'stop; [ "${KEEP_DB:-0}" = 1 ] || teardown' EXIT
  tools
  setup
  start
  verify
  profile_live
}

all() {
  trap 'stop; [ "${KEEP_DB:-0}" = 1 ] || teardown' EXIT
  ulimit -n 65536 2>/dev/null || true
  envinfo
  setup
  start
  verify
  bench
}

case "${1:-all}" in
  all|setup|teardown|start|stop|verify|bench|envinfo|profile|profile_live|tools) "${1:-all}" ;;
  *) echo "usage: $0 [all|profile|setup|start|verify|bench|profile_live|stop|teardown]" >&2; exit 2 ;;
esac
