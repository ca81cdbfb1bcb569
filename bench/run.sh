#!/usr/bin/env bash
# Runs jobwire's standard load cases and prints one markdown table row per case.
#
#   bench/run.sh [path/to/jobwire]        (default: build/jobwire)
#   BENCH_BIN=dir    where jw-load / jw-ceiling are (default: <jobwire dir>/bench)
#   CASES="..."      subset of: jobs1k jobs10k bcast10k idle10k idle19k ceiling (default: all)
#   BCAST_RATE=N     events/s for the 10,000-client broadcast cases (default 10)
#   BCAST_DURATION=S, BCAST_DRAIN=S   their measured publishing and drain (default 20, 5);
#                    e.g. BCAST_RATE=20 BCAST_DURATION=10 BCAST_DRAIN=30 for saturation
#
# It starts its own redis-server and jobwire on free loopback ports with a temporary config
# (dev_auth yes, log_level warn), raises `ulimit -n` to the hard limit, runs each case with
# bounded time and counts (each case <= ~60 s), and stops what it started by PID on exit.
# Raw tool output goes to $WORK/*.out (printed at the end); the work dir is kept on failure.
set -u

JOBWIRE=${1:-build/jobwire}
BENCH_BIN=${BENCH_BIN:-$(dirname "$JOBWIRE")/bench}
LOAD=$BENCH_BIN/jw-load
CEIL=$BENCH_BIN/jw-ceiling
CASES=${CASES:-"jobs1k jobs10k bcast10k idle10k idle19k ceiling"}
BCAST_RATE=${BCAST_RATE:-10}
BCAST_DURATION=${BCAST_DURATION:-20}
BCAST_DRAIN=${BCAST_DRAIN:-5}
PROCS=${PROCS:-2}

for f in "$JOBWIRE" "$LOAD" "$CEIL"; do
    [ -x "$f" ] || { echo "run.sh: $f not found or not executable" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "run.sh: redis-server is not installed" >&2; exit 1; }

ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/jwbench.XXXXXX")
PIDS=()
FAILED=0

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    if [ "$FAILED" = 0 ]; then rm -rf "$WORK"; else echo "run.sh: kept $WORK" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT SECONDS: until something accepts on 127.0.0.1:PORT.
wait_port() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --client-output-buffer-limit "pubsub 256mb 128mb 60" --logfile "$WORK/redis.log" &
PIDS+=($!)
wait_port "$REDIS_PORT" 10 || { echo "run.sh: redis did not start" >&2; FAILED=1; exit 1; }

JW_PID=
JW_PORT=
start_jobwire() {
    JW_PORT=$(free_port)
    cat >"$WORK/jobwire.conf" <<EOF
listen_address 127.0.0.1
listen_port $JW_PORT
redis_host 127.0.0.1
redis_port $REDIS_PORT
dev_auth yes
log_level warn
client_max_subscriptions 256
client_queue_max_bytes 4194304
max_connections_per_ip 0
max_connections_per_user 0
web_root ""
EOF
    "$JOBWIRE" --config "$WORK/jobwire.conf" >>"$WORK/jobwire.log" 2>&1 &
    JW_PID=$!
    PIDS+=("$JW_PID")
    wait_port "$JW_PORT" 10 || { echo "run.sh: jobwire did not start" >&2; cat "$WORK/jobwire.log" >&2; FAILED=1; exit 1; }
    # /readyz turns 200 once the Redis subscription is active.
    local i
    for ((i = 0; i < 100; i++)); do
        curl -sf "http://127.0.0.1:$JW_PORT/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "run.sh: jobwire never became ready" >&2
}

# Stops one process we started and forgets its PID, so the exit trap never signals a PID
# that the system may have handed to someone else meanwhile.
stop_pid() {
    local p keep=()
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    for p in "${PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}

# Extracts figures from a jw-load output file into one table row.
row() { # name, clients, mode, rate, outfile, rc
    local f=$5 conn pub del dps lat cpu rss
    conn=$(sed -n 's/^clients connected+subscribed: \([0-9]*\) of .*failures: \([0-9]*\)).*/\1 (\2 failed)/p' "$f")
    pub=$(sed -n 's/^events published: \([0-9]*\) .*/\1/p' "$f")
    del=$(sed -n 's/^deliveries received: \([0-9]*\) of \([0-9]*\) expected (missing \(-*[0-9]*\);.*/\1 \/ \2 (missing \3)/p' "$f")
    dps=$(sed -n 's/^deliveries\/s: \([0-9]*\) .*/\1/p' "$f")
    lat=$(sed -n 's/^latency ms: p50 \([0-9.]*\)  p90 \([0-9.]*\)  p99 \([0-9.]*\)  p99.9 \([0-9.]*\)  max \([0-9.]*\)/\1 \/ \2 \/ \3 \/ \4 \/ \5/p' "$f")
    cpu=$(sed -n 's/.*CPU \([0-9]*\) % of one core.*/\1 %/p' "$f")
    rss=$(sed -n 's/.*RSS \([0-9]*\) kB before connects, \([0-9]*\) kB at end.*/\2 kB/p' "$f")
    echo "| $1 | $2 | $3 | $4 | $conn | $pub | $del | $dps | $lat | $cpu | $rss | $6 |"
}

idle_row() { # name, clients, outfile, rc
    local f=$3 conn rss
    conn=$(sed -n 's/^clients connected+subscribed: \([0-9]*\) of .*failures: \([0-9]*\)).*/\1 (\2 failed)/p' "$f")
    rss=$(sed -n 's/^jobwire RSS: \([0-9]*\) kB before, \([0-9]*\) kB with .*: \([0-9.]*\) kB per connection/\1 | \2 | \3/p' "$f")
    echo "| $1 | $2 | $conn | $rss | $4 |"
}

run_load() { # outfile, jw-load args...
    local out=$1
    shift
    timeout 120 "$LOAD" --redis-port "$REDIS_PORT" "$@" >"$out" 2>&1
    local rc=$?
    [ "$rc" = 0 ] || FAILED=1
    return $rc
}

LOAD_ROWS=()
IDLE_ROWS=()
for c in $CASES; do
    case $c in
    jobs1k)
        start_jobwire
        run_load "$WORK/jobs1k.out" --url "ws://127.0.0.1:$JW_PORT/ws" --clients 1000 \
            --procs "$PROCS" --mode jobs --jobs 100 --rate 2000 --warmup 2 --duration 20 \
            --drain 3 --pid "$JW_PID"
        LOAD_ROWS+=("$(row "jobs, 1k clients" 1000 "100 jobs, 10 clients each" 2000 "$WORK/jobs1k.out" $?)")
        stop_pid "$JW_PID"
        ;;
    jobs10k)
        start_jobwire
        run_load "$WORK/jobs10k.out" --url "ws://127.0.0.1:$JW_PORT/ws" --clients 10000 \
            --procs "$PROCS" --mode jobs --jobs 10000 --rate 2000 --warmup 2 --duration 20 \
            --drain 3 --pid "$JW_PID"
        LOAD_ROWS+=("$(row "jobs, 10k clients" 10000 "10k jobs, 1 client each" 2000 "$WORK/jobs10k.out" $?)")
        stop_pid "$JW_PID"
        ;;
    bcast10k)
        start_jobwire
        run_load "$WORK/bcast10k.out" --url "ws://127.0.0.1:$JW_PORT/ws" --clients 10000 \
            --procs "$PROCS" --mode broadcast --rate "$BCAST_RATE" --warmup 2 \
            --duration "$BCAST_DURATION" --drain "$BCAST_DRAIN" --pid "$JW_PID"
        LOAD_ROWS+=("$(row "broadcast, 10k clients" 10000 "one job" "$BCAST_RATE" "$WORK/bcast10k.out" $?)")
        stop_pid "$JW_PID"
        ;;
    idle10k | idle19k)
        n=10000
        [ "$c" = idle19k ] && n=19000
        start_jobwire
        run_load "$WORK/$c.out" --url "ws://127.0.0.1:$JW_PORT/ws" --clients "$n" \
            --procs "$PROCS" --mode idle --settle 3 --connect-timeout 45 --pid "$JW_PID"
        IDLE_ROWS+=("$(idle_row "idle, one job each" "$n" "$WORK/$c.out" $?)")
        stop_pid "$JW_PID"
        ;;
    ceiling)
        # The baseline: the same broadcast case against jw-ceiling (plain send() fan-out).
        CPORT=$(free_port)
        "$CEIL" --port "$CPORT" --redis-port "$REDIS_PORT" --lifetime 90 >"$WORK/ceiling.log" 2>&1 &
        CPID=$!
        PIDS+=("$CPID")
        wait_port "$CPORT" 10
        run_load "$WORK/ceiling.out" --url "ws://127.0.0.1:$CPORT/ws" --clients 10000 \
            --procs "$PROCS" --mode broadcast --rate "$BCAST_RATE" --warmup 2 \
            --duration "$BCAST_DURATION" --drain "$BCAST_DRAIN" --pid "$CPID"
        LOAD_ROWS+=("$(row "broadcast via jw-ceiling" 10000 "one job" "$BCAST_RATE" "$WORK/ceiling.out" $?)")
        stop_pid "$CPID"
        ;;
    *)
        echo "run.sh: unknown case $c" >&2
        ;;
    esac
done

echo
echo "| case | clients | subscriptions | events/s | connected | events | deliveries | deliveries/s | latency ms p50 / p90 / p99 / p99.9 / max | daemon CPU | daemon RSS at end | rc |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for r in "${LOAD_ROWS[@]}"; do echo "$r"; done
if [ ${#IDLE_ROWS[@]} -gt 0 ]; then
    echo
    echo "| case | clients | connected | daemon RSS before kB | RSS with clients kB | kB per connection | rc |"
    echo "|---|---|---|---|---|---|---|"
    for r in "${IDLE_ROWS[@]}"; do echo "$r"; done
fi
echo
for f in "$WORK"/*.out; do
    [ -e "$f" ] || continue
    echo "== $(basename "$f")"
    cat "$f"
done
if [ -s "$WORK/jobwire.log" ]; then
    echo "== jobwire.log (last 20 lines)"
    tail -20 "$WORK/jobwire.log"
fi
exit "$FAILED"
