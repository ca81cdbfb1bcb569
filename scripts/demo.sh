#!/usr/bin/env bash
# Runs jobwire on this machine with demo data:
#   scripts/demo.sh [--no-publisher]        (PORT=8080 by default)
# Installs the dependencies, builds, starts a private redis-server unless REDIS_URL or REDIS_HOST
# is set, runs jobwire with dev_auth on, and publishes demo job events for alice and bob.
# Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

publisher=1
for arg in "$@"; do
    case "$arg" in
    --no-publisher) publisher=0 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done
PORT=${PORT:-8080}

bash scripts/install-deps.sh
bash scripts/build.sh --target jobwire

tmp=$(mktemp -d -t jobwire-demo.XXXXXX)
pids=()
cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
    echo "demo stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_until() { # seconds, command...: polls the command until it succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [[ $SECONDS -lt $deadline ]] || { echo "demo.sh: timed out: $*" >&2; return 1; }
        sleep 0.1
    done
}

if [[ -z "${REDIS_URL:-}${REDIS_HOST:-}" ]]; then
    REDIS_HOST=127.0.0.1
    REDIS_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    export REDIS_HOST REDIS_PORT
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$tmp" >"$tmp/redis.log" 2>&1 &
    pids+=($!)
    echo "started redis-server on port $REDIS_PORT (pid $!)"
fi

rcli() {
    if [[ -n "${REDIS_URL:-}" ]]; then
        redis-cli --no-auth-warning -u "$REDIS_URL" "$@"
    else
        env ${REDIS_PASSWORD:+REDISCLI_AUTH="$REDIS_PASSWORD"} \
            redis-cli -h "$REDIS_HOST" -p "${REDIS_PORT:-6379}" "$@"
    fi
}
wait_until 10 rcli ping

cat >"$tmp/jobwire.conf" <<CONF
listen_address 127.0.0.1
listen_port $PORT
dev_auth yes
web_root $PWD/web
log_level info
CONF
./build/jobwire --config "$tmp/jobwire.conf" &
jobwire_pid=$!
pids+=($jobwire_pid)
wait_until 10 curl -fsS "http://127.0.0.1:$PORT/healthz"

# One job's life: progress 0..100, then complete; the hash ai:job:{id} mirrors the state.
demo_job() { # user, job id, step delay
    local user=$1 job=$2 delay=$3 p status
    for p in 0 10 20 30 40 50 60 70 80 90 100; do
        status=processing; [[ $p -gt 0 ]] || status=pending
        rcli HSET "ai:job:$job" status "$status" progress "$p" userId "$user" \
            updateTime "$(date -u +%FT%TZ)" >/dev/null
        rcli EXPIRE "ai:job:$job" 300 >/dev/null
        rcli PUBLISH "ai:job:progress:$job" "{\"eventType\":\"job_status_update\",\"jobId\":\"$job\",\"userId\":\"$user\",\"status\":\"$status\",\"progress\":$p,\"timestamp\":\"$(date -u +%FT%TZ)\"}" >/dev/null
        sleep "$delay"
    done
    rcli HSET "ai:job:$job" status completed progress 100 resultKey "ai:schedule:result:$job" >/dev/null
    rcli PUBLISH "ai:job:complete:$job" "{\"eventType\":\"job_completed\",\"jobId\":\"$job\",\"userId\":\"$user\",\"status\":\"completed\",\"progress\":100,\"resultKey\":\"ai:schedule:result:$job\"}" >/dev/null
}

publish_forever() {
    local round=1
    trap 'kill $(jobs -p) 2>/dev/null; exit 0' TERM
    while true; do
        demo_job alice "job_alice_${round}a" 0.5 &
        demo_job alice "job_alice_${round}b" 0.8 &
        demo_job bob "job_bob_${round}" 0.6 &
        wait
        sleep 2
        round=$((round + 1))
    done
}

if [[ $publisher -eq 1 ]]; then
    publish_forever &
    pids+=($!)
fi

echo
echo "jobwire is running. Open:  http://127.0.0.1:$PORT/?user=alice   (or ?user=bob, ?user=ops&admin=1)"
echo "Metrics: http://127.0.0.1:$PORT/metrics    Stop: Ctrl-C"
wait "$jobwire_pid"
