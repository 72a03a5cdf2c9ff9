#!/usr/bin/env bash
# Issue 4: Depot's realtime path against a bare Channels consumer, side by side in one run.
# See README.md.
#
#   bench/realtime/run.sh            # everything, 4-6 minutes: create depot_bench_rt, migrate,
#                                    # seed, start uvicorn (CPU 0), fan-out 1/100/1000 for both
#                                    # contenders (+ py-spy) and resume (clients on CPU 1), then a
#                                    # Celery worker and the mutation-to-client loop, then the GC
#                                    # what-if;
#                                    # stop everything, drop the database, delete the Redis keys
#   CLIENTS=1,100,1000 JOBS=200 PROFILE=1 KEEP_DB=0 bench/realtime/run.sh   # knobs (defaults);
#                                    # PROFILE=1: py-spy during the bursts at the largest N
#   PHASES=fanout,resume bench/realtime/run.sh          # a subset of fanout,resume,jobs,whatif
#                                    # (whatif: both contenders again at the largest N with the
#                                    # server's collector put back to CPython's defaults)
#
# Pieces, for working by hand:  run.sh setup | start | worker | driver ARGS | stop | teardown
#                                run.sh anchors [LABEL]   # the anchors' own Celery loop, once
#
# Needs Postgres on 127.0.0.1:5432 (user postgres, trust), Redis on 127.0.0.1:6379, taskset, and
# Depot's .venv (`uv sync`). py-spy comes from bench/realtime/.venv (created here if missing,
# with uv or else python -m venv + pip).
# Results: results/realtime.md and results/*.json; logs, pids, profiles: .run/ and results/raw/.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY="$ROOT/.venv/bin/python"
RUN="${BENCH_RUN_DIR:-$HERE/.run}"
OUT="${OUT:-$HERE/results}"
PGH=127.0.0.1; PGP=5432; PGU=postgres
DB="${BENCH_DB:-depot_bench_rt}"
PORT="${BENCH_PORT:-8301}"
SERVER_CPU="${SERVER_CPU:-0}"; CLIENT_CPU="${CLIENT_CPU:-1}"
PHASES="${PHASES:-fanout,resume,jobs,whatif}"
# The anchors' own Celery loop (their harness and peers project, unchanged), run before and after
# Depot's jobs phase: the issue's 10 ms goal is that loop's 9.5 ms on another day's machine.
ANCHORS_SRC="${ANCHORS_DIR:-$ROOT/../shared/bench-anchors}"
ANCHORS="$RUN/anchors"
ANCHORS_PORT="${ANCHORS_PORT:-8310}"
ANCHORS_DB="${ANCHORS_DB:-depot_bench_anchors}"
# Redis db 14 holds their channel layer and broker (their keys have no prefix): reserved for this.
ANCHORS_REDIS="${ANCHORS_REDIS:-redis://127.0.0.1:6379/14}"

export BENCH_RUN_DIR="$RUN"
export DJANGO_SETTINGS_MODULE=bench.realtime.settings
export DATABASE_URL="postgresql://$PGU@$PGH:$PGP/$DB"
export REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379/13}"
export REDIS_KEY_PREFIX=depotbenchrt DEPOT_QUEUE_PREFIX=depotbenchrt
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

mkdir -p "$RUN/logs" "$RUN/pids" "$RUN/var" "$OUT/raw"
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true

setup() {
  # A new database numbers its jobs from 1 again: an older run's trace would mix with this one's.
  rm -rf "$RUN/trace"
  dropdb -h "$PGH" -p "$PGP" -U "$PGU" --if-exists "$DB"
  createdb -h "$PGH" -p "$PGP" -U "$PGU" "$DB"
  (cd "$ROOT" && "$PY" manage.py migrate -v0 --noinput)
  (cd "$ROOT" && "$PY" -m bench.realtime.seed "$RUN/seed.json")
}

teardown() {
  dropdb -h "$PGH" -p "$PGP" -U "$PGU" --if-exists "$DB" && echo "dropped database $DB"
  if psql -h "$PGH" -p "$PGP" -U "$PGU" -tAc "select 1 from pg_database where datname='$ANCHORS_DB'" | grep -q 1; then
    dropdb -h "$PGH" -p "$PGP" -U "$PGU" "$ANCHORS_DB" && echo "dropped database $ANCHORS_DB"
    redis-cli -u "$ANCHORS_REDIS" --scan | xargs -r -n 500 redis-cli -u "$ANCHORS_REDIS" del >/dev/null
  fi
  # Only this bench's keys (its own prefix); never FLUSHDB.
  local keys
  keys=$(redis-cli -u "$REDIS_URL" --scan --pattern "$REDIS_KEY_PREFIX:*" | wc -l)
  redis-cli -u "$REDIS_URL" --scan --pattern "$REDIS_KEY_PREFIX:*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
  echo "deleted $keys redis keys under $REDIS_KEY_PREFIX:"
}

alive() { [ -f "$RUN/pids/$1.pid" ] && kill -0 "$(cat "$RUN/pids/$1.pid")" 2>/dev/null; }

start_server() {
  if alive server; then echo "server already running"; return; fi
  if (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "port $PORT is taken by another process" >&2; return 1; fi
  ( cd "$ROOT" && exec taskset -c "$SERVER_CPU" "$ROOT/.venv/bin/uvicorn" bench.realtime.asgi:application \
      --host 127.0.0.1 --port "$PORT" --workers 1 --loop uvloop --http httptools \
      --lifespan off --no-access-log --log-level warning --timeout-graceful-shutdown 5 \
      --timeout-keep-alive 30 >"$RUN/logs/server.log" 2>&1 ) &
  echo $! >"$RUN/pids/server.pid"
  for _ in $(seq 1 1200); do
    if (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      echo "started server pid=$(cat "$RUN/pids/server.pid") port=$PORT cpu=$SERVER_CPU"; return; fi
    alive server || break
    sleep 0.1
  done
  echo "FAILED to start the server, see $RUN/logs/server.log" >&2; cat "$RUN/logs/server.log" >&2; return 1
}

start_worker() {
  if alive worker; then echo "worker already running"; return; fi
  (cd "$ROOT" && "$ROOT/.venv/bin/celery" -A project purge -f >/dev/null 2>&1 || true)
  # One prefork child, as in the anchors' Celery loop; not pinned (like Postgres and Redis).
  ( cd "$ROOT" && exec "$ROOT/.venv/bin/celery" -A project worker -P prefork -c 1 --without-gossip \
      --without-mingle --without-heartbeat -l warning >"$RUN/logs/worker.log" 2>&1 ) &
  echo $! >"$RUN/pids/worker.pid"
  echo "started worker pid=$(cat "$RUN/pids/worker.pid")"
}

stop_one() {
  local name=$1
  if alive "$name"; then
    local pid; pid=$(cat "$RUN/pids/$name.pid")
    kill "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    echo "stopped $name pid=$pid"
  fi
  rm -f "$RUN/pids/$name.pid"
}

stop() { stop_one worker; stop_one server; }

pyspy() {
  if [ ! -x "$HERE/.venv/bin/py-spy" ]; then
    if command -v uv >/dev/null; then
      (cd "$HERE" && uv venv -q .venv --python 3.11 && uv pip install -q --python .venv/bin/python py-spy)
    else
      (cd "$HERE" && "$PY" -m venv .venv && .venv/bin/pip install -q py-spy)
    fi || { echo "py-spy unavailable; skipping the profile" >&2; return 1; }
  fi
  echo "$HERE/.venv/bin/py-spy"
}

anchors_env() {
  export BENCH_DB="$ANCHORS_DB" BENCH_DB_HOST="$PGH" BENCH_DB_PORT="$PGP" BENCH_DB_USER="$PGU" \
    BENCH_CHANNELS_REDIS="$ANCHORS_REDIS" BENCH_CELERY_BROKER="$ANCHORS_REDIS" \
    BENCH_REDIS_URL="$ANCHORS_REDIS"
}

anchors_setup() {
  if [ ! -f "$ANCHORS_SRC/harness/ws_bench.py" ]; then
    echo "no anchors at $ANCHORS_SRC (set ANCHORS_DIR): their loop is left out" >&2; return 1; fi
  # A copy, so that their harness writes nothing into the shared tree; its own venv (their
  # pinned requirements, not Depot's).
  mkdir -p "$ANCHORS"
  rm -rf "$ANCHORS/src" && mkdir -p "$ANCHORS/src"
  tar -C "$ANCHORS_SRC" --exclude=./.venv --exclude=./.venv-graphene --exclude=./results -cf - . \
    | tar -C "$ANCHORS/src" -xf -
  if [ ! -x "$ANCHORS/.venv/bin/python" ] || ! cmp -s "$ANCHORS/src/requirements.txt" "$ANCHORS/requirements.txt"; then
    rm -rf "$ANCHORS/.venv"
    if command -v uv >/dev/null; then
      uv venv -q "$ANCHORS/.venv" --python "$("$PY" -c 'import sys; print(sys.executable)')" \
        && uv pip install -q --python "$ANCHORS/.venv/bin/python" -r "$ANCHORS/src/requirements.txt"
    else
      "$PY" -m venv "$ANCHORS/.venv" && "$ANCHORS/.venv/bin/pip" install -q -r "$ANCHORS/src/requirements.txt"
    fi || { echo "could not install the anchors' requirements" >&2; return 1; }
    cp "$ANCHORS/src/requirements.txt" "$ANCHORS/requirements.txt"
  fi
  dropdb -h "$PGH" -p "$PGP" -U "$PGU" --if-exists "$ANCHORS_DB"
  createdb -h "$PGH" -p "$PGP" -U "$PGU" "$ANCHORS_DB"
  (anchors_env; cd "$ANCHORS/src/peers" && env -u DJANGO_SETTINGS_MODULE -u PYTHONPATH \
    "$ANCHORS/.venv/bin/python" manage.py migrate -v0)
}

# One run of their loop: their ASGI app on its own uvicorn (as their servers.sh starts it, on
# our port), their worker, their client; all stopped after. Writes $OUT/anchors-$1.{json,md}.
anchors_loop() {
  local label=$1
  (
    anchors_env
    cd "$ANCHORS/src/peers"
    unset DJANGO_SETTINGS_MODULE PYTHONPATH
    taskset -c "$SERVER_CPU" "$ANCHORS/.venv/bin/uvicorn" peers.asgi_ws:application \
      --host 127.0.0.1 --port "$ANCHORS_PORT" --workers 1 --loop uvloop --http httptools \
      --no-access-log --log-level warning --timeout-keep-alive 30 >"$RUN/logs/anchors-server.log" 2>&1 &
    server=$!
    "$ANCHORS/.venv/bin/celery" -A peers.celery purge -f >/dev/null 2>&1 || true
    "$ANCHORS/.venv/bin/celery" -A peers.celery worker -P prefork -c 1 --without-gossip \
      --without-mingle --without-heartbeat -l warning >"$RUN/logs/anchors-worker.log" 2>&1 &
    worker=$!
    trap 'kill $worker $server 2>/dev/null; wait $worker $server 2>/dev/null || true' EXIT
    for _ in $(seq 1 300); do
      (echo >"/dev/tcp/127.0.0.1/$ANCHORS_PORT") 2>/dev/null && break
      kill -0 "$server" 2>/dev/null || { cat "$RUN/logs/anchors-server.log" >&2; exit 1; }
      sleep 0.1
    done
    # Their client waits for the worker itself (it retries its first job for up to 2 min).
    taskset -c "$CLIENT_CPU" "$ANCHORS/.venv/bin/python" ../harness/ws_bench.py \
      --base "ws://127.0.0.1:$ANCHORS_PORT" --clients "" --celery-jobs "${JOBS:-200}" \
      --out "$OUT/anchors-$label" | tail -6
  )
}

driver() {
  (cd "$ROOT" && taskset -c "$CLIENT_CPU" "$PY" -m bench.realtime.clients \
      --base "ws://127.0.0.1:$PORT" --server-pid "$(cat "$RUN/pids/server.pid")" \
      --seed "$RUN/seed.json" --out "$OUT" --server-log "$RUN/logs/server.log" "$@")
}

all() {
  local t0=$SECONDS
  trap 'stop; [ "${KEEP_DB:-0}" = 1 ] || teardown' EXIT
  setup
  start_server
  {
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "python: $("$PY" -V)"; echo "postgres: $(psql -h "$PGH" -U "$PGU" -tAc 'show server_version')"
    echo "redis: $(redis-cli -u "$REDIS_URL" info server | grep redis_version | tr -d '\r')"
    echo "server: uvicorn --workers 1 --loop uvloop (ws: uvicorn default), taskset CPU $SERVER_CPU; clients and producer: CPU $CLIENT_CPU"
    "$PY" -c 'import importlib.metadata as m; print(" ".join(f"{p}=={m.version(p)}" for p in ["django","strawberry-graphql","strawberry-graphql-django","channels","channels-redis","celery","uvicorn","websockets","uvloop","redis","psycopg"]))'
  } >"$OUT/env.txt"
  local phases=() spy_args=()
  [[ ",$PHASES," == *",fanout,"* ]] && phases+=(fanout)
  [[ ",$PHASES," == *",resume,"* ]] && phases+=(resume)
  if [[ ",$PHASES," == *",fanout,"* || ",$PHASES," == *",whatif,"* ]] && [ "${PROFILE:-1}" = 1 ]; then
    local spy; if spy=$(pyspy); then spy_args=(--py-spy "$spy"); fi
  fi
  if [ ${#phases[@]} -gt 0 ]; then
    driver --phases "$(IFS=,; echo "${phases[*]}")" --clients "${CLIENTS:-1,100,1000}" "${spy_args[@]}"
  fi
  if [[ ",$PHASES," == *",jobs,"* ]]; then
    local anchors=0
    rm -f "$OUT"/anchors-*.json "$OUT"/anchors-*.md "$OUT"/wakeups.json
    if [ "${ANCHORS_LOOP:-1}" = 1 ] && anchors_setup; then anchors=1; fi
    [ $anchors = 1 ] && anchors_loop before
    # The box's price of a round trip after a pause, beside the loop it explains (wakeups.py).
    taskset -c "$CLIENT_CPU" "$PY" -m bench.realtime.wakeups "$OUT/wakeups.json"
    start_worker
    driver --phases jobs --jobs "${JOBS:-200}"
    stop_one worker
    [ $anchors = 1 ] && anchors_loop after
  fi
  # Last: it puts the server's collector back to CPython's defaults in place, for good.
  if [[ ",$PHASES," == *",whatif,"* ]]; then
    driver --phases whatif --clients "${CLIENTS:-1,100,1000}" "${spy_args[@]}"
  fi
  driver --phases report
  echo "total $((SECONDS - t0)) s; results in $OUT/realtime.md"
}

case "${1:-all}" in
  all) all ;;
  setup) setup ;;
  start) start_server ;;
  worker) start_worker ;;
  stop) stop ;;
  teardown) teardown ;;
  anchors) anchors_setup && anchors_loop "${2:-alone}" ;;
  driver) shift; driver "$@" ;;
  *) echo "usage: $0 [all|setup|start|worker|stop|teardown|anchors [LABEL]|driver ARGS]" >&2; exit 2 ;;
esac
