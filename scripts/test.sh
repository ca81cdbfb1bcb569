#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): dependencies, the builds with -Werror (normal,
# ASan+UBSan, ThreadSanitizer), clang-format, unit tests (ctest, normal and ASan trees),
# valgrind over the unit tests, the chart, packaging, fuzzers, the web client in chromium, and
# the integration tests against the normal and the ASan binary, and the tests that exercise the
# two threads' handoffs against the TSan binary. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3 # Debian's python, which has python3-websockets/-redis/-pytest
results=build/test-results
passed=0 failed=0 failures=()

ok() { passed=$((passed + ${2:-1})); }
bad() { failed=$((failed + ${2:-1})); failures+=("$1"); }
banner() { printf '\n===== %s =====\n' "$*"; }

summary() {
    banner summary
    for f in "${failures[@]}"; do echo "FAILED: $f"; done
    echo "$passed passed, $failed failed"
    [[ $failed -eq 0 ]]
}

# Adds the counts of a JUnit XML file (ctest --output-junit, pytest --junitxml) to the totals.
count_junit() { # name, file
    local counts
    if ! counts=$("$PY" - "$2" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
t = f = s = 0
for su in suites:
    for case in su.iter("testcase"):
        t += 1
        if case.find("failure") is not None or case.find("error") is not None:
            f += 1
        elif case.find("skipped") is not None:
            s += 1
print(t - f - s, f, s)
PYEOF
    ); then
        bad "$1 (no results)"
        return
    fi
    read -r p f s <<<"$counts"
    echo "$1: $p passed, $f failed, $s skipped"
    ok "$1" "$p"
    if [[ $f -gt 0 ]]; then bad "$1 ($f tests)" "$f"; fi
    if [[ $((p + f)) -eq 0 ]]; then bad "$1 (ran no test)"; fi
}

banner "dependencies"
bash scripts/install-deps.sh || { bad install-deps; summary; exit 1; }

banner "build (normal + asan + tsan, -Werror)"
if bash scripts/build.sh --asan --tsan -- -DJW_WERROR=ON; then ok build; else bad build; summary; exit 1; fi
mkdir -p "$results"

banner "clang-format"
mapfile -t sources < <(find src include tests/unit -type f \( -name '*.c' -o -name '*.h' \) \
    2>/dev/null | sort; ls bench/*.c 2>/dev/null)
if [[ ${#sources[@]} -eq 0 ]] ||
    clang-format --dry-run --Werror "${sources[@]}" >"$results/clang-format.log" 2>&1; then
    ok clang-format
else
    echo "files not formatted (fix with: clang-format -i FILE):"
    grep -oE '^[^: ]+\.[ch]:' "$results/clang-format.log" | sort | uniq -c
    head -n 40 "$results/clang-format.log"
    bad clang-format
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

for tree in build build-asan; do
    banner "ctest $tree"
    (cd "$tree" && ctest --output-on-failure --timeout 300 -j2 \
        --output-junit "$PWD/../$results/ctest-$tree.xml")
    count_junit "ctest $tree" "$results/ctest-$tree.xml"
done

banner "valgrind (unit tests, normal tree)"
mapfile -t units < <(find build/tests/unit -maxdepth 1 -type f -executable -name 'test_*' | sort)
for t in "${units[@]}"; do
    echo "--- valgrind $t"
    if (cd build/tests/unit && CMOCKA_MESSAGE_OUTPUT=stdout timeout 600 valgrind -q \
        --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --track-fds=no "./$(basename "$t")") >"$results/valgrind-$(basename "$t").log" 2>&1; then
        ok "valgrind $t"
    else
        cat "$results/valgrind-$(basename "$t").log"
        bad "valgrind $t"
    fi
done
[[ ${#units[@]} -gt 0 ]] || echo "(no unit test executables)"

# Runs a script whose last line is "N passed, N failed" and adds its counts.
run_counted() { # name, command...
    local name=$1 log="$results/$1.log" last p f
    shift
    "$@" 2>&1 | tee "$log"
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [[ -z "$last" ]]; then bad "$name (no summary line)"; return; fi
    read -r p _ f _ <<<"${last//,/}"
    ok "$name" "$p"
    if [[ $f -gt 0 ]]; then bad "$name ($f checks)" "$f"; fi
    if [[ $p -eq 0 && $f -eq 0 ]]; then bad "$name (ran no test)"; fi
}

banner "helm chart (lint, template, rendered objects)"
run_counted helm bash tests/helm/test_chart.sh

banner "packaging (cmake --install, man page, systemd unit, hardening, Dockerfile)"
run_counted packaging bash tests/packaging/test_install.sh

banner "fuzzing (libFuzzer, bounded run per target)"
run_counted fuzz bash scripts/fuzz.sh "${JW_FUZZ_SECONDS:-15}"

banner "web (jobwire.js unit tests, dashboard in chromium)"
run_counted web bash scripts/test-web.sh

for tree in build build-asan; do
    banner "integration tests ($tree/jobwire)"
    JOBWIRE_BIN="$PWD/$tree/jobwire" "$PY" -m pytest -p no:cacheprovider -q -rfE \
        --junitxml="$results/pytest-$tree.xml" tests/integration
    count_junit "pytest $tree" "$results/pytest-$tree.xml"
done

# ThreadSanitizer: the tests that push the most through the inbox, the command submissions and
# the op callbacks between the Redis thread and the gateway thread. Any report fails the run.
banner "integration tests (build-tsan/jobwire, thread handoffs)"
JOBWIRE_BIN="$PWD/build-tsan/jobwire" \
    TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
    "$PY" -m pytest -p no:cacheprovider -q -rfE --junitxml="$results/pytest-tsan.xml" \
    tests/integration/test_model.py tests/integration/test_upstream.py \
    tests/integration/test_snapshot.py tests/integration/test_integrity.py \
    tests/integration/test_recovery.py
count_junit "pytest tsan" "$results/pytest-tsan.xml"

summary
