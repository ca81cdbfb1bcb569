#!/usr/bin/env bash
# Side-by-side fan-out benchmark: jobwire against nchan, webdis and a Node ws+ioredis bridge, all
# driven by the ONE load generator of the shared kit (../shared/bench-peers/, read its README).
# Loopback only; every run is bounded (1,000 or 10,000 clients, at most 10,000 messages, the
# kit's 5 s drain, each run under `timeout`); what this script starts it stops by PID.
#
#   bench/peers.sh [CASE...]     CASE: idle rss hold burst paced c10k burst10k bigburst sustained
#                                (default: idle rss burst paced c10k)
#
#   idle   CPU (utime+stime, all threads) and context switches of every server over IDLE_S (30)
#          seconds with no client: wake-ups when there is nothing to do
#   rss    RSS before and with 10,000 idle subscribed clients (webdis: 9,000, it holds 2 fds per
#          client) -> RSS per connection; Redis' RSS too (webdis keeps one Redis client per WS)
#   burst  1,000 clients, 1,000 messages published as fast as possible (throughput, CPU/delivery)
#   paced  1,000 clients, 50 messages/s = 50,000 deliveries/s (latency, CPU/delivery)
#   c10k   10,000 clients, 5 messages/s = 50,000 deliveries/s offered, 200 messages (no webdis)
#   burst10k  10,000 clients, 200 messages published as fast as possible (no webdis)
#   bigburst  1,000 clients, 3,000 x 1 KiB published as fast as possible: more than a client's
#          client_queue_max_bytes (1 MiB) in a fraction of a second (slow-consumer handling)
#   sustained  1,000 clients, 1,000 messages/s for 10 s = 1,000,000 deliveries/s offered: enough
#          CPU-seconds per run to compare builds of jobwire (a 1,000-message burst takes ~0.3 s)
#   hold   10,000 clients connect and stay idle HOLD_S (70) seconds, no messages: the server's
#          CPU for the 10,000 handshakes and per idle minute (keepalive PINGs: jobwire's are
#          every 25 s; nchan, webdis and the bridge send none by default). Not in the default.
#
# Environment:
#   JOBWIRE     jobwire release binary            (default: <repo>/../build-rel/jobwire)
#   EXTRA       more jobwire binaries run beside the first and measured in the same loop, as
#               "NAME=PATH NAME=PATH ..." (e.g. patched builds), on ports 7411, 7412, ...
#   SERVERS     default "jobwire nchan bridge webdis" (+ the EXTRA names)
#   SIZES       payload bytes, default "200 1024"; REPS (default 3): runs per case/size/server,
#               the server order rotates from one repetition to the next
#   KIT         default <repo>/../shared/bench-peers;  WORK default /tmp/peers (the kit's);
#   OUT         default $WORK/side-by-side;  KEEP=1 leaves peers and jobwire running at the end
# Results: $OUT/<case>/s<size>/rep<r>/<server>-c<clients>-r<rate>.json (+ .err), medians in
# $OUT/summary.md (also printed). Needs: apt-get install -y redis-server webdis nginx
# libnginx-mod-nchan nodejs npm (the kit's start-peers.sh runs npm install itself).
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
KIT=${KIT:-$REPO/../shared/bench-peers}
export WORK=${WORK:-/tmp/peers}
OUT=${OUT:-$WORK/side-by-side}
JOBWIRE=${JOBWIRE:-$REPO/../build-rel/jobwire}
EXTRA=${EXTRA:-}
SIZES=${SIZES:-"200 1024"}
REPS=${REPS:-3}
IDLE_S=${IDLE_S:-30}
HOLD_S=${HOLD_S:-70}
SERVERS=${SERVERS:-"jobwire nchan bridge webdis"}
for x in $EXTRA; do SERVERS="$SERVERS ${x%%=*}"; done
CASES=("$@")
[ ${#CASES[@]} -eq 0 ] && CASES=(idle rss burst paced c10k)

for f in "$KIT/bench.sh" "$KIT/start-peers.sh" "$JOBWIRE" $(for x in $EXTRA; do echo "${x#*=}"; done); do
    [ -e "$f" ] || { echo "peers.sh: $f not found" >&2; exit 1; }
done
mkdir -p "$OUT" "$WORK/jw"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- servers ---------------------------------------------------------------------------------
JW_PIDS=()
stop_jobwires() {
    for p in "${JW_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || continue
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p"
    done
    JW_PIDS=()
}
finish() {
    if [ "${KEEP:-0}" = 1 ]; then
        echo "KEEP=1: left running: jobwire ${JW_PIDS[*]}; peers: see $WORK/run/*.pid" >&2
        return
    fi
    stop_jobwires
    "$KIT/stop-peers.sh" >&2
}
trap finish EXIT
trap 'exit 130' INT TERM

start_jobwire() { # start_jobwire NAME BINARY PORT
    local name=$1 bin=$2 port=$3 conf="$WORK/jw/$1.conf"
    sed "s/^listen_port .*/listen_port $port/" "$KIT/jobwire-bench.conf" > "$conf"
    "$bin" --config "$conf" > "$WORK/logs/$name.log" 2>&1 &
    local pid=$!
    JW_PIDS+=("$pid")
    echo "$pid" > "$WORK/jw/$name.pid"
    for _ in $(seq 1 50); do
        curl -sf "http://127.0.0.1:$port/readyz" > /dev/null 2>&1 && { echo "$name up (pid $pid, port $port)" >&2; return 0; }
        sleep 0.2
    done
    echo "peers.sh: $name did not become ready; see $WORK/logs/$name.log" >&2
    exit 1
}

"$KIT/start-peers.sh" >&2 || exit 1
start_jobwire jobwire "$JOBWIRE" 7410
declare -A JW_PORT=([jobwire]=7410)
port=7411
for x in $EXTRA; do
    start_jobwire "${x%%=*}" "${x#*=}" $port
    JW_PORT[${x%%=*}]=$port
    port=$((port + 1))
done

pid_of() { # the process whose CPU/RSS is the server's (children are added by the tools)
    [ -n "${JW_PORT[$1]:-}" ] && { cat "$WORK/jw/$1.pid"; return; }
    case $1 in
    nchan) cat "$WORK/run/nginx.pid" ;;
    bridge | webdis | redis) cat "$WORK/run/$1.pid" ;;
    esac
}
tree() { echo "$1" $(pgrep -P "$1" 2>/dev/null); } # the server and its children (nginx workers)
rss_kb() { local t=0 p; for p in $(tree "$1"); do t=$((t + $(awk '/^VmRSS/{print $2}' /proc/$p/status 2>/dev/null || echo 0))); done; echo $t; }
cpu_ticks() { local t=0 p; for p in $(tree "$1"); do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null || echo 0))); done; echo $t; }
ctxsw() { local t=0 p f; for p in $(tree "$1"); do for f in /proc/$p/task/*/status; do t=$((t + $(awk '/ctxt_switches/{s+=$2} END{print s+0}' "$f" 2>/dev/null || echo 0))); done; done; echo $t; }

bench() { # bench SERVER  (CLIENTS, MESSAGES, SIZE, RATE, SRC, OUT in the environment)
    local s=$1 port=${JW_PORT[$1]:-}
    case $s in
    nchan | bridge | webdis) timeout 900 "$KIT/bench.sh" "$s" > /dev/null ;;
    *)
        URL="ws://127.0.0.1:$port/ws?user=ops&admin=1" SEND='{"type":"subscribe","jobs":["1"]}' \
            WAIT_ACK=1 PUBLISH=redis://127.0.0.1:7401/ai:job:status:1 PIDS=$(pid_of "$s") NAME=$s \
            timeout 900 "$KIT/bench.sh" custom > /dev/null ;;
    esac
}

rotate() { # rotate N WORDS...: the words starting at index N mod count
    local n=$1; shift
    local a=("$@") i
    for ((i = 0; i < ${#a[@]}; i++)); do printf '%s ' "${a[$(((i + n) % ${#a[@]}))]}"; done
}

run_case() { # run_case CASE
    local c=$1 size rep s sizes=$SIZES
    [ "$c" = bigburst ] && sizes=1024
    for rep in $(seq 1 "$REPS"); do
        for size in $sizes; do
            for s in $(rotate "$rep" $SERVERS); do
                case $c in c10k | burst10k) [ "$s" = webdis ] && continue ;; esac
                export OUT="$OUT_BASE/$c/s$size/rep$rep" SIZE=$size
                mkdir -p "$OUT"
                case $c in
                burst) CLIENTS=1000 MESSAGES=1000 RATE=0 SRC= bench "$s" ;;
                paced) CLIENTS=1000 MESSAGES=1000 RATE=50 SRC= bench "$s" ;;
                c10k) CLIENTS=10000 MESSAGES=200 RATE=5 SRC=127.0.0.2,127.0.0.3 bench "$s" ;;
                burst10k) CLIENTS=10000 MESSAGES=200 RATE=0 SRC=127.0.0.2,127.0.0.3 bench "$s" ;;
                bigburst) CLIENTS=1000 MESSAGES=3000 RATE=0 SRC= bench "$s" ;;
                sustained) CLIENTS=1000 MESSAGES=10000 RATE=1000 SRC= bench "$s" ;;
                esac
                # the machine's 1-minute load average just after the run (the run is most of it)
                cut -d' ' -f1 /proc/loadavg > "$OUT/$s.loadavg"
                echo "[$(date +%T)] $c size=$size rep=$rep $s done (load $(cat "$OUT/$s.loadavg"))" >&2
            done
        done
    done
}

case_idle() {
    local s p c0 c1 x0 x1 f="$OUT_BASE/idle.tsv"
    printf 'server\tseconds\tcpu_ticks\tctx_switches\n' > "$f"
    sleep 5 # let the start-up settle
    for s in $SERVERS redis; do
        p=$(pid_of "$s"); c0=$(cpu_ticks "$p"); x0=$(ctxsw "$p")
        sleep "$IDLE_S"
        c1=$(cpu_ticks "$p"); x1=$(ctxsw "$p")
        printf '%s\t%s\t%s\t%s\n' "$s" "$IDLE_S" $((c1 - c0)) $((x1 - x0)) | tee -a "$f" >&2
    done
}

case_rss() {
    local s n p f="$OUT_BASE/rss.tsv"
    printf 'server\tclients\trss0_kb\tredis_rss0_kb\tjson\n' > "$f"
    for s in $SERVERS; do
        n=10000; [ "$s" = webdis ] && n=9000
        p=$(pid_of "$s")
        export OUT="$OUT_BASE/rss"; mkdir -p "$OUT"
        printf '%s\t%s\t%s\t%s\t%s\n' "$s" "$n" "$(rss_kb "$p")" "$(rss_kb "$(pid_of redis)")" \
            "$OUT/$s-c$n-r0.json" >> "$f"
        CLIENTS=$n MESSAGES=0 RATE=0 SIZE=200 IDLE=10 SRC=127.0.0.2,127.0.0.3 bench "$s"
        echo "[$(date +%T)] rss $s done" >&2
    done
}

case_hold() { # CPU of 10,000 handshakes, then of HOLD_S - 10 seconds with them idle
    local s n p c0 c1 c2 rep err f="$OUT_BASE/hold.tsv" url send
    printf 'server\trep\tclients\tconnect_ticks\tidle_s\tidle_ticks\tctx_switches_idle\n' > "$f"
    mkdir -p "$OUT_BASE/hold"
    for rep in $(seq 1 "$REPS"); do
        for s in $(rotate "$rep" $SERVERS); do
            n=10000; [ "$s" = webdis ] && n=9000
            p=$(pid_of "$s"); send=; err="$OUT_BASE/hold/$s-$rep.err"
            case $s in
            nchan) url='ws://127.0.0.1:7403/sub/ai:job:status:1' ;;
            bridge) url='ws://127.0.0.1:7404/?job=1' ;;
            webdis) url='ws://127.0.0.1:7402/.json'; send='["SUBSCRIBE","ai:job:status:1"]' ;;
            *) url="ws://127.0.0.1:${JW_PORT[$s]}/ws?user=ops&admin=1"; send='{"type":"subscribe","jobs":["1"]}' ;;
            esac
            sleep 5
            c0=$(cpu_ticks "$p")
            timeout $((HOLD_S + 120)) node "$WORK/loadgen/wsfanout.js" --raw --clients "$n" --threads 2 --messages 0 \
                --src 127.0.0.2,127.0.0.3 --url "$url" ${send:+--send "$send" --wait-ack} --origin http://127.0.0.1 \
                --idle 1 --hold "$HOLD_S" --pids "$p" > /dev/null 2> "$err" &
            local lg=$!
            for _ in $(seq 1 1200); do grep -q holding "$err" 2> /dev/null && break; sleep 0.1; done
            c1=$(cpu_ticks "$p"); local x1; x1=$(ctxsw "$p")
            sleep $((HOLD_S - 10))
            c2=$(cpu_ticks "$p"); local x2; x2=$(ctxsw "$p")
            wait "$lg"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$rep" "$n" $((c1 - c0)) $((HOLD_S - 10)) $((c2 - c1)) $((x2 - x1)) | tee -a "$f" >&2
        done
    done
}

OUT_BASE=$OUT
for c in "${CASES[@]}"; do
    case $c in
    idle) case_idle ;;
    rss) case_rss ;;
    hold) case_hold ;;
    burst | paced | c10k | burst10k | bigburst | sustained) run_case "$c" ;;
    *) echo "peers.sh: unknown case $c" >&2; exit 2 ;;
    esac
done

# ---- medians ---------------------------------------------------------------------------------
/usr/bin/python3 - "$OUT_BASE" > "$OUT_BASE/summary.md" <<'EOF'
import glob, json, os, statistics, sys
base = sys.argv[1]
def med(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 2) if xs else None
rows = {}
for f in sorted(glob.glob(f"{base}/*/s*/rep*/*.json")):
    case, size = f[len(base) + 1:].split("/")[:2]
    r = json.load(open(f))
    name = r["label"].rsplit("-c", 1)[0]
    d = r.get("deliveries") or 0
    lat = r.get("latency_ms") or {}
    load = os.path.join(os.path.dirname(f), name + ".loadavg")
    rows.setdefault((case, int(size[1:]), name), []).append({
        "deliv/s": r.get("deliveries_per_s"), "lost": r.get("lost"),
        "us/deliv": r["peer_cpu_secs"] * 1e6 / d if d and r.get("peer_cpu_secs") is not None else None,
        "client s/1M": r["client_cpu_secs"] * 1e6 / d if d else None,
        "p50": lat.get("p50"), "p99": lat.get("p99"), "max": lat.get("max"),
        "other s": r.get("other_cpu_secs_estimate"), "busy%": r.get("machine_busy_before_start_pct"),
        "load1": float(open(load).read()) if os.path.exists(load) else None})
cols = ["deliv/s", "us/deliv", "client s/1M", "p50", "p99", "max", "lost", "other s", "busy%", "load1"]
print("medians (n = runs); us/deliv = server CPU µs per delivery; client s/1M = load generator CPU s per 1M deliveries; other s = CPU of everything else during the run; busy% = machine before start; load1 = 1-minute load average just after the run\n")
print("| case | size | server | n | " + " | ".join(cols) + " |")
print("|---|---|---|---|" + "---|" * len(cols))
for (case, size, name), rs in sorted(rows.items()):
    print(f"| {case} | {size} | {name} | {len(rs)} | " + " | ".join(str(med([x[c] for x in rs])) for c in cols) + " |")
rss = os.path.join(base, "rss.tsv")
if os.path.exists(rss):
    print("\n| server | clients | RSS before MB | RSS with clients MB | kB per connection | Redis RSS delta MB |")
    print("|---|---|---|---|---|---|")
    for line in open(rss).read().splitlines()[1:]:
        s, n, r0, rr0, jf = line.split("\t")
        try:
            r = json.load(open(jf))
        except OSError:
            continue
        r1 = r.get("rss_idle_total_kb") or 0
        aux = r.get("aux_rss_idle_kb") or {}
        rr1 = sum(v.get("VmRSS", 0) if isinstance(v, dict) else 0 for v in aux.values())
        print(f"| {s} | {r.get('ready')} | {int(r0)/1024:.1f} | {r1/1024:.1f} | {(r1-int(r0))/max(1, r.get('ready') or 1):.2f} | {(rr1-int(rr0))/1024:.1f} |")
hold = os.path.join(base, "hold.tsv")
if os.path.exists(hold):
    print("\n| server | clients | CPU s for the handshakes (median) | idle CPU % of a core (median) | context switches/s idle |")
    print("|---|---|---|---|---|")
    by = {}
    for line in open(hold).read().splitlines()[1:]:
        s, rep, n, ct, sec, it, cs = line.split("\t")
        by.setdefault((s, n), []).append((int(ct) / 100, int(it) / int(sec), int(cs) / int(sec)))
    for (s, n), v in sorted(by.items()):
        print(f"| {s} | {n} | {statistics.median(x[0] for x in v):.2f} | {statistics.median(x[1] for x in v):.2f} | {statistics.median(x[2] for x in v):.0f} |")
idle = os.path.join(base, "idle.tsv")
if os.path.exists(idle):
    print("\n| server (no clients) | seconds | CPU ticks (10 ms) | context switches |")
    print("|---|---|---|---|")
    for line in open(idle).read().splitlines()[1:]:
        print("| " + " | ".join(line.split("\t")) + " |")
EOF
cat "$OUT_BASE/summary.md"
