#!/bin/bash
# Builds the libFuzzer targets (tests/fuzz) with clang into build-fuzz and runs
# each for SECONDS_PER_TARGET seconds (default 30), one after the other, on a
# copy of its seed corpus under build-fuzz/fuzz-work/ (the tree's corpus is
# never written). Prints per target: executions, exec/s, coverage (libFuzzer's
# cov: at the end of the run), and the total. Exits non-zero on any crash,
# leak, timeout or invariant failure; the reproducer is kept in
# build-fuzz/fuzz-work/<target>/ and its path printed.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_ARGS (extra
# libFuzzer flags).
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
SECS=${1:-30}
shift || true
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
ALL=(http create config manifest image qmp bridge_store overlay_ipam chanmsg)
TARGETS=("${@:-${ALL[@]}}")

dict_of() {
	case $1 in
	http) echo http.dict ;;
	create | manifest | image) echo json-vm.dict ;;
	qmp) echo qmp.dict ;;
	config) echo config.dict ;;
	esac
}

if ! command -v clang >/dev/null; then
	echo "fuzz.sh: clang is needed (apt-get install clang)" >&2
	exit 2
fi
CC=clang cmake -S . -B "$BUILD" -DCVMM_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null || exit 2
cmake --build "$BUILD" -j2 --target fuzz >/dev/null || {
	cmake --build "$BUILD" -j1 --target fuzz 2>&1 | grep -E "error|Error" | head -20
	exit 2
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$SRC/tests/fuzz/lsan.supp}
WORK=$BUILD/fuzz-work
failed=0
total=0
rows=()
for t in "${TARGETS[@]}"; do
	bin=$BUILD/tests/fuzz/fuzz_$t
	if [ ! -x "$bin" ]; then
		echo "fuzz.sh: no target $t" >&2
		exit 2
	fi
	dir=$WORK/$t
	rm -rf "$dir"
	mkdir -p "$dir/corpus"
	cp tests/fuzz/corpus/"$t"/* "$dir/corpus/"
	dict=$(dict_of "$t")
	args=(-max_total_time="$SECS" -print_final_stats=1 -timeout=25 -rss_limit_mb=4096
		-artifact_prefix="$dir/" ${dict:+-dict=tests/fuzz/dict/$dict} ${FUZZ_ARGS:-})
	echo "== $t: ${SECS}s" >&2
	"$bin" "${args[@]}" "$dir/corpus" >"$dir/log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
	cov=$(grep -oE 'cov: [0-9]+' "$dir/log" | tail -1 | cut -d' ' -f2)
	artifacts=$(find "$dir" -maxdepth 1 -name 'crash-*' -o -maxdepth 1 -name 'leak-*' \
		-o -maxdepth 1 -name 'timeout-*' -o -maxdepth 1 -name 'oom-*' | head -5)
	status=ok
	if [ $rc -ne 0 ] || [ -n "$artifacts" ]; then
		status=FAILED
		failed=1
		echo "fuzz.sh: $t failed (exit $rc); log: $dir/log" >&2
		grep -E "ERROR|SUMMARY|invariant|no answer|leak" "$dir/log" | head -5 >&2
		for a in $artifacts; do echo "  reproducer: $a ($bin $a)" >&2; done
	fi
	rows+=("$(printf '%-14s %12s %10s %8s  %s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$status")")
	total=$((total + ${execs:-0}))
done
printf '%-14s %12s %10s %8s  %s\n' target executions exec/s cov status
printf '%s\n' "${rows[@]}"
printf '%-14s %12s\n' total "$total"
exit $failed
