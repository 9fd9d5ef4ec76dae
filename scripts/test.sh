#!/usr/bin/env bash
# Installs dependencies, builds (normal and ASan+UBSan), builds the tiny test
# guest, and runs every test: unit tests in both builds, integration tests
# (real cvmmd, CLI, QEMU guests under TCG) in the normal build. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCVMM_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCVMM_SANITIZE=ON -DCVMM_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
scripts/build-test-guest.sh

echo "== unit tests under ASan+UBSan"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	ctest -L unit --output-on-failure)
echo "== all tests (unit + integration)"
(cd build && ctest --output-on-failure)
