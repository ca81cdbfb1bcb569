#!/usr/bin/env bash
# Bounded libFuzzer run of every target in tests/fuzz (docs/SECURITY.md, "Fuzzing").
#   scripts/fuzz.sh [seconds-per-target]     default 20
# Builds with clang in build-fuzz/, runs each target on a scratch copy of its seed corpus for
# the given time, keeps crash artifacts in build-fuzz/artifacts/, prints "N passed, N failed"
# and exits non-zero when any target crashed, leaked or hit a sanitizer report.
set -euo pipefail

secs=${1:-20}
case $secs in '' | *[!0-9]*) echo "usage: $0 [seconds-per-target]" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
targets=(fuzz_protocol fuzz_event fuzz_token fuzz_json fuzz_outq fuzz_resp)

# libFuzzer ships in clang's runtime on Debian 12 (libclang-rt-14-dev).
if ! command -v clang >/dev/null ||
    ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
    echo "fuzz.sh: installing clang and libclang-rt-14-dev" >&2
    sudo_cmd=; [ "$(id -u)" -eq 0 ] || sudo_cmd=sudo
    $sudo_cmd apt-get install -y --no-install-recommends clang libclang-rt-14-dev
fi

CC=clang cmake -S "$root" -B "$build" -DJW_FUZZ=ON -DJW_TESTS=OFF -DJW_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null

passed=0 failed=0
mkdir -p "$build/artifacts"
for t in "${targets[@]}"; do
    work=$build/corpus/$t
    rm -rf "$work" && mkdir -p "$work"
    cp "$root/tests/fuzz/corpus/$t/"* "$work/"
    log=$build/$t.log
    if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$build/tests/fuzz/$t" -max_total_time="$secs" -max_len=9000 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$build/artifacts/$t-" "$work" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "PASS $t: ${runs:-?} runs in ${secs}s ($(( ${runs:-0} / (secs > 0 ? secs : 1) )) execs/s)"
        passed=$((passed + 1))
    else
        echo "FAIL $t (log: $log, artifacts: $build/artifacts/$t-*)"
        grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -5 || true
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
