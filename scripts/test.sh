#!/usr/bin/env bash
# Installs dependencies, builds (normal, ASan+UBSan, TSan), builds the tiny
# test guest, and runs every test. Run as root.
#   - unit tests in the normal and the ASan+UBSan build;
#   - every integration suite (real cvmmd, CLI, QEMU guests under TCG, a
#     private libvirtd) in the normal build: lifecycle, CLI, network modes,
#     crash injection (test_crash), fault injection (test_faults);
#   - against the ASan+UBSan build of cvmmd: lifecycle (both backends),
#     net_passt and the stress test (30 s);
#   - against the TSan build of cvmmd: the stress test (30 s);
#   - every libFuzzer target, 30 s each (niced, beside the last stage).
# Each phase prints how long it took (CI must stay under 40 minutes).
# The integration runner (tests/integration/run_suite.py) fails a suite that
# skips a test; on top of that, any "skipped" / "Not Run" in ctest's output
# fails this script: a test that cannot run here is a failure, never a pass.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

phase_t0=$SECONDS
phase() { echo "== [$((SECONDS - phase_t0)) s] $*"; }

scripts/install-deps.sh
phase "dependencies installed"
# The Debian guest of integration.cloud (cached by the script's hash; a miss
# is an mmdebstrap run of several minutes, mostly downloading and
# unpacking): built in the background, niced, while the trees compile and
# the other suites run; only integration.cloud waits for it, last.
debian_log=$(mktemp)
nice -n 10 scripts/build-debian-guest.sh >"$debian_log" 2>&1 &
debian_pid=$!
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCVMM_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCVMM_SANITIZE=ON -DCVMM_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DCVMM_TSAN=ON >/dev/null
cmake --build build-tsan -j"$jobs"
scripts/build-test-guest.sh
phase "built (normal, ASan+UBSan, TSan) and the tiny guest"

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
phase "unit tests under ASan+UBSan"
run "unit tests under ASan+UBSan" build-asan -L unit
unset ASAN_OPTIONS UBSAN_OPTIONS
# The harness gives an ASan cvmmd its environment (tests/integration/
# harness.py, daemon_env: libtirpc preloaded for backend-libvirt).
phase "integration under ASan+UBSan"
CVMM_STRESS_SECONDS=30 run "integration under ASan+UBSan: lifecycle (qemu, libvirt), net_passt, stress" build-asan \
	-R '^integration\.(lifecycle|net_passt|stress)$'
phase "stress under TSan"
CVMM_STRESS_SECONDS=30 run "stress under TSan" build-tsan -R '^integration\.stress$'
# libFuzzer targets (tests/fuzz, clang): 30 s each on their seed corpora,
# niced, in the background of the last stage: the fuzzers take the CPU the
# guests of the suites leave (CI must stay under 40 minutes); their daemon
# can boot no VM and listens on a socket of its own (tests/fuzz/fuzz_env.h).
fuzz_log=$(mktemp)
nice -n 10 scripts/fuzz.sh 30 >"$fuzz_log" 2>&1 &
fuzz_pid=$!
# lifecycle, net_passt and stress ran above against the sanitized daemons;
# everything else runs here.
phase "all tests but cloud (the fuzzers run beside them)"
rc=0
run "all tests (unit + integration, crash and fault injection included)" build \
	-E '^integration\.(stress|lifecycle|net_passt|cloud)$' || rc=$?
phase "waiting for the Debian guest's build"
if ! wait "$debian_pid"; then
	echo "FAILED: scripts/build-debian-guest.sh:" >&2
	tail -40 "$debian_log" >&2
	exit 1
fi
rm -f "$debian_log"
phase "cloud (the Debian guest)"
run "cloud images, cloud-init, DHCP (the Debian guest)" build -R '^integration\.cloud$' || rc=$?
phase "waiting for the fuzzers"
fuzz_rc=0
wait "$fuzz_pid" || fuzz_rc=$?
echo "== fuzzing: every target 30 s"
cat "$fuzz_log"
rm -f "$fuzz_log"
phase "done"
if [ "$rc" -ne 0 ] || [ "$fuzz_rc" -ne 0 ]; then
	echo "FAILED: tests exit $rc, fuzzing exit $fuzz_rc" >&2
	exit 1
fi
