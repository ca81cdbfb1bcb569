#!/usr/bin/env bash
# Runs jobwire on this machine with demo data:
#   scripts/demo.sh [--no-publisher]        (PORT=8080 by default)
# Installs the dependencies, builds, starts a private redis-server unless REDIS_URL or REDIS_HOST
# is set, runs jobwire with dev_auth on, and runs scripts/simulate.py: demo jobs for alice, bob
# and carol (--no-publisher: none).
# Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

publisher=1
for arg in "$@"; do
    case "$arg" in
    --no-publisher) publisher=0 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
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

# Simulated AI jobs for alice, bob and carol (scripts/simulate.py writes ai:job:{id} and
# publishes ai:job:{status|progress|complete|error}:{id} the way the services do).
if [[ $publisher -eq 1 ]]; then
    /usr/bin/python3 scripts/simulate.py --users alice,bob,carol --concurrency 4 >"$tmp/simulate.log" 2>&1 &
    pids+=($!)
    echo "started the job simulator (log: $tmp/simulate.log)"
fi

base="http://127.0.0.1:$PORT"
echo
echo "jobwire is running (dev_auth: the user id comes from the page URL). Open:"
echo "  $base/?user=alice            alice's jobs"
echo "  $base/?user=bob              bob's jobs (never alice's)"
echo "  $base/?user=ops&admin=1      every job (admin view)"
echo "Metrics: $base/metrics    Stop: Ctrl-C"
wait "$jobwire_pid"
