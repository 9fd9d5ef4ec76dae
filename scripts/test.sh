#!/usr/bin/env bash
# Installs dependencies, builds (normal, ASan+UBSan, TSan), builds the tiny
# test guest, and runs every test. Run as root.
#   - unit tests in the normal and the ASan+UBSan build;
#   - every integration suite (real cvmmd, CLI, QEMU guests under TCG, a
#     private libvirtd) in the normal build: lifecycle, CLI, network modes,
#     crash injection (test_crash), fault injection (test_faults);
#   - against the ASan+UBSan build of cvmmd: lifecycle (both backends),
#     net_passt and the 60 s stress test;
#   - against the TSan build of cvmmd: the 60 s stress test.
# The integration runner (tests/integration/run_suite.py) fails a suite that
# skips a test; on top of that, any "skipped" / "Not Run" in ctest's output
# fails this script: a test that cannot run here is a failure, never a pass.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCVMM_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCVMM_SANITIZE=ON -DCVMM_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DCVMM_TSAN=ON >/dev/null
cmake --build build-tsan -j"$jobs"
scripts/build-test-guest.sh
# The Debian guest of integration.cloud (cached by the script's hash; a
# miss is an mmdebstrap run, several minutes).
scripts/build-debian-guest.sh >/dev/null

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# run NAME DIR CTEST-ARGS...: ctest in DIR, output kept to look for skips.
run() {
	local name=$1 dir=$2
	shift 2
	echo "== $name"
	local rc=0
	(cd "$dir" && ctest --output-on-failure "$@") 2>&1 | tee "$out/$name.log" || rc=$?
	if grep -Eq '\*\*\*Skipped|Not Run|[0-9]+ tests? skipped|skipped=[0-9]' "$out/$name.log"; then
		echo "FAILED: $name skipped tests (a skip fails CI)" >&2
		return 1
	fi
	return "$rc"
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
run "unit tests under ASan+UBSan" build-asan -L unit
unset ASAN_OPTIONS UBSAN_OPTIONS
# The harness gives an ASan cvmmd its environment (tests/integration/
# harness.py, daemon_env: libtirpc preloaded for backend-libvirt).
run "integration under ASan+UBSan: lifecycle (qemu, libvirt), net_passt, stress" build-asan \
	-R '^integration\.(lifecycle|net_passt|stress)$'
CVMM_STRESS_SECONDS=60 run "stress under TSan" build-tsan -R '^integration\.stress$'
# libFuzzer targets (tests/fuzz, clang): 30 s each on their seed corpora.
echo "== fuzzing: every target 30 s"
scripts/fuzz.sh 30
# lifecycle, net_passt and stress ran above against the sanitized daemons;
# everything else runs here.
run "all tests (unit + integration, crash and fault injection included)" build -E '^integration\.(stress|lifecycle|net_passt)$'

