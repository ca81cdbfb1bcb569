#!/usr/bin/env bash
# Configures and builds jobwire.
#   scripts/build.sh              build/       RelWithDebInfo
#   scripts/build.sh --asan       build/ and build-asan/ (Debug, ASan+UBSan)
#   scripts/build.sh --asan-only  build-asan/ only
#   scripts/build.sh --tsan       also build-tsan/ (ThreadSanitizer, the daemon only)
#   --target NAME                 build one target only (e.g. jobwire)
# Extra arguments after "--" go to every cmake configure step (e.g. -- -DJW_WERROR=ON).
set -euo pipefail
cd "$(dirname "$0")/.."

normal=1 asan=0 tsan=0 extra=() target=()
while [[ $# -gt 0 ]]; do
    case "$1" in
    --asan) asan=1 ;;
    --asan-only) asan=1 normal=0 ;;
    --tsan) tsan=1 ;;
    --target) target=(--target "${2:?--target needs a name}"); shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

jobs=$(nproc 2>/dev/null || echo 2)

build_tree() { # dir, cmake args...
    local dir=$1; shift
    echo "== configure $dir"
    cmake -S . -B "$dir" "$@" "${extra[@]}"
    echo "== build $dir"
    cmake --build "$dir" -j"$jobs" "${target[@]}"
}

if [[ $normal -eq 1 ]]; then
    build_tree build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DJW_TESTS=ON -DJW_BENCH=ON
fi
if [[ $asan -eq 1 ]]; then
    build_tree build-asan -DCMAKE_BUILD_TYPE=Debug -DJW_SANITIZE=ON -DJW_TESTS=ON -DJW_BENCH=ON
fi
if [[ $tsan -eq 1 ]]; then
    target=(--target jobwire)
    build_tree build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DJW_TSAN=ON -DJW_HARDENING=OFF
fi
