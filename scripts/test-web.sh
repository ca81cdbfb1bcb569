#!/usr/bin/env bash
# The web tests: unit tests of web/jobwire.js (node --test, fake WebSocket and fake server), the
# package checks (CommonJS build current and loadable, tsc on the declarations without and with
# the DOM lib), and browser tests of the dashboard (Debian's chromium driven by playwright-core
# against the real jobwire and redis-server). Installs what is missing first: the chromium
# package (apt) and tests/web's npm packages (npm ci from package-lock.json: playwright-core,
# which never downloads a browser, typescript, @types/react, and the web/ package linked).
# Ends with "N passed, N failed, N skipped"; exits non-zero on any failure.
#   JOBWIRE_BIN=path             the daemon under test (default build/jobwire, built when missing)
#   CHROMIUM=path                the browser (default /usr/bin/chromium)
#   JOBWIRE_WEB_SKIP_PENDING=1   skip the browser tests of server features not built yet
# Screenshots, logs and TAP output: tests/artifacts/web/.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ARTIFACTS=$ROOT/tests/artifacts/web
passed=0 failed=0 skipped=0 failures=()

banner() { printf '\n===== %s =====\n' "$*"; }
summary() {
    banner summary
    for f in "${failures[@]}"; do echo "FAILED: $f"; done
    echo "$passed passed, $failed failed, $skipped skipped"
    [[ $failed -eq 0 ]]
}
bail() { failed=$((failed + 1)); failures+=("$1"); summary; exit 1; }

banner "dependencies"
if [[ -z "${CHROMIUM:-}" ]] && [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' chromium 2>/dev/null)" != ii* ]]; then
    SUDO=()
    [[ $(id -u) -eq 0 ]] || SUDO=(sudo)
    echo "installing chromium (Debian package)"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        chromium </dev/null || {
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null &&
            "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                --no-install-recommends chromium </dev/null
    } || bail "apt-get install chromium"
fi
command -v node >/dev/null && command -v npm >/dev/null || bail "node and npm (scripts/install-deps.sh)"
(cd tests/web && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) ||
    bail "npm ci (tests/web)"

if [[ -z "${JOBWIRE_BIN:-}" && ! -x build/jobwire ]]; then
    banner "build"
    bash scripts/build.sh --target jobwire || bail "build jobwire"
fi

mkdir -p "$ARTIFACTS"

# Runs one node --test suite with the TAP reporter; adds its counts to the totals.
run_suite() { # name, node --test arguments...
    local name=$1 tap="$ARTIFACTS/$1.tap"
    shift
    banner "$name"
    (cd tests/web && node --test --test-reporter=tap "$@") | tee "$tap"
    local p f c s
    p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" | tail -n 1)
    s=$(sed -n 's/^# skipped \([0-9]*\)$/\1/p' "$tap" | tail -n 1)
    f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" | tail -n 1)
    c=$(sed -n 's/^# cancelled \([0-9]*\)$/\1/p' "$tap" | tail -n 1)
    if [[ -z "$p" || -z "$f" ]]; then
        failed=$((failed + 1)); failures+=("$name (no results)")
        return
    fi
    f=$((f + ${c:-0}))
    echo "$name: $p passed, $f failed, ${s:-0} skipped"
    passed=$((passed + p))
    skipped=$((skipped + ${s:-0}))
    if [[ $f -gt 0 ]]; then failed=$((failed + f)); failures+=("$name ($f tests)"); fi
    if [[ $((p + f)) -eq 0 ]]; then failed=$((failed + 1)); failures+=("$name (ran no test)"); fi
}

# Unit tests and the package checks (tsc runs in unit/package.test.mjs).
run_suite web-unit --test-timeout=60000 unit/
# One browser test at a time: each starts its own redis-server and jobwire.
run_suite web-browser --test-concurrency=1 --test-timeout=60000 browser/

echo "screenshots and logs: $ARTIFACTS"
summary
