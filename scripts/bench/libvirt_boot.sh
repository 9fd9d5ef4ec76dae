#!/usr/bin/env bash
# libvirt_boot.sh — boot-to-console-line of image "tiny" through cvmm's libvirt
# backend, next to `virsh create` of the very domain XML cvmm generated, in
# the same run against the same libvirtd.  A benchmark, not a test: it prints
# a markdown table and exits 0 whatever the figures; non-zero only when it
# cannot run (not root, no build, a daemon that does not come up).
#
# Standalone:   scripts/bench/libvirt_boot.sh [RUNS]
# Sourced:      . scripts/bench/libvirt_boot.sh; libvirt_boot_bench [RUNS]
#               (prints the table on stdout, progress on stderr; with
#               LVB_RESULT=FILE it also writes the medians there as shell
#               assignments: LVB_CVMM_MS=.. LVB_VIRSH_MS=.. LVB_OVERHEAD_PCT=..)
#
# Environment (defaults in brackets):
#   LVB_RUNS [7]     runs per side (at least 5), alternating which goes first
#   BUILD [<repo>/build]                 cvmmd, cvmm, plugins/*.so
#   IMAGE_DIR [/var/lib/cvmm/images]     where image "tiny" lives
#   KEEP [0]         1: keep the temp dir (configs, logs, domain.xml)
#
# How: a private libvirtd + virtlogd (tests/integration/libvirtd.py: system
# mode in a mount namespace of its own; no host libvirt is used or touched)
# and a cvmmd on a temp config (cvm.backend = "libvirt", net-user, no port
# mapping; binaries copied to the temp dir so a rebuild cannot change them).
# VM "lvboot" is created stopped; one warm-up boot each way creates its disk
# overlay, warms libvirt and the page cache, and yields <run>/domain.xml, the
# XML cvmm handed libvirt.  Then per run, alternately first:
#   cvmm:  clock starts before `cvmm start lvboot` is executed; stops when
#          "cvmm-tiny: ready" appears in the VM's console log (past where the
#          log ended before); then `cvmm kill`, waiting for "stopped";
#   virsh: clock starts before `virsh create domain.xml`; same line, same
#          file (the XML points the serial console there); `virsh destroy`.
# Both boot the same XML on the same libvirtd, so the difference is what
# cvmm adds: CLI + API + lifecycle job + plugins + rendering.  On a shared
# 2-core host wall time is dominated by CPU contention, so the QEMU's own CPU
# time when the line appears is recorded too (equal CPU = same guest work),
# and so is the launcher's share alone: from the command to the QEMU
# process's start (its /proc start time; 10 ms steps).

_lvb_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

_lvb_say() { printf 'libvirt_boot: %s\n' "$*" >&2; }
_lvb_now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# median of the numbers on stdin
_lvb_median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print 0; exit} if (NR%2) print a[(NR+1)/2]; else printf "%d\n", (a[NR/2]+a[NR/2+1])/2}'; }

# "CPU_MS START_MS" of the QEMU whose command line carries UUID $1: its CPU
# time (user+system) and when it was started, in ms of boot time (the clock
# of _lvb_boot_ms)
_lvb_qemu_stats() {
	local p hz
	hz=$(getconf CLK_TCK)
	for p in /proc/[0-9]*; do
		if tr '\0' '\n' 2>/dev/null <"$p/cmdline" | grep -qx -- "$1" &&
			tr '\0' '\n' 2>/dev/null <"$p/cmdline" | head -1 | grep -q qemu-system; then
			awk -v hz="$hz" '{sub(/.*\) /, ""); print int(($12 + $13) * 1000 / hz), int($20 * 1000 / hz)}' "$p/stat" 2>/dev/null
			return
		fi
	done
	echo "0 0"
}

# boot time in ms (10 ms steps), the clock of a process's start time
_lvb_boot_ms() { awk '{printf "%d\n", $1 * 1000}' /proc/uptime; }

# waits (up to 120 s) for the ready line in $1 past byte offset $2; prints the
# time (ms) it was seen, or nothing on timeout
_lvb_wait_ready() {
	local f=$1 off=$2 end=$(($(_lvb_now_ms) + 120000))
	while (($(_lvb_now_ms) < end)); do
		if tail -c +$((off + 1)) "$f" 2>/dev/null | grep -q "cvmm-tiny: ready"; then
			_lvb_now_ms
			return 0
		fi
		sleep 0.01
	done
	return 1
}

_lvb_cleanup() {
	[ -n "${_lvb_cvmmd_pid:-}" ] && kill "$_lvb_cvmmd_pid" 2>/dev/null && wait "$_lvb_cvmmd_pid" 2>/dev/null
	_lvb_cvmmd_pid=
	if [ -n "${_lvb_work:-}" ] && [ -f "$_lvb_work/libvirt/state.json" ]; then
		python3 "$_lvb_root/tests/integration/libvirtd.py" stop "$_lvb_work/libvirt" >/dev/null 2>&1
	fi
	if [ -n "${_lvb_work:-}" ]; then
		if [ "${KEEP:-0}" = 1 ]; then _lvb_say "kept $_lvb_work"; else rm -rf "$_lvb_work"; fi
	fi
	_lvb_work=
}

libvirt_boot_bench() (
	set -u -o pipefail
	local runs=${1:-${LVB_RUNS:-7}}
	local build=${BUILD:-$_lvb_root/build} images=${IMAGE_DIR:-/var/lib/cvmm/images}
	((runs >= 5)) || runs=5
	[ "$(id -u)" -eq 0 ] || { _lvb_say "run as root (libvirt's system mode)"; return 2; }
	for f in core/cvmmd core/cvmm plugins/backend-libvirt.so plugins/net-user.so; do
		[ -e "$build/$f" ] || { _lvb_say "missing $build/$f (build first; backend-libvirt needs libvirt-dev)"; return 2; }
	done
	[ -f "$images/tiny/metadata.json" ] || { _lvb_say "image tiny missing under $images (scripts/build-test-guest.sh)"; return 2; }
	command -v virsh >/dev/null || { _lvb_say "virsh missing"; return 2; }

	_lvb_work=$(mktemp -d /tmp/cvmm-lvboot.XXXXXX)
	trap _lvb_cleanup EXIT
	trap '_lvb_cleanup; exit 130' INT TERM
	local w=$_lvb_work
	mkdir -p "$w/bin" "$w/plugins" "$w/run" "$w/data"
	cp "$build/core/cvmmd" "$build/core/cvmm" "$w/bin/"
	cp "$build/plugins/backend-libvirt.so" "$build/plugins/net-user.so" "$w/plugins/"

	_lvb_say "starting a private libvirtd + virtlogd"
	local uri
	uri=$(python3 "$_lvb_root/tests/integration/libvirtd.py" start "$w/libvirt") ||
		{ _lvb_say "libvirtd did not start: $(tail -5 "$w/libvirt/libvirtd.log" 2>/dev/null)"; return 2; }
	local virsh=(virsh -q -c "$uri")

	cat >"$w/cvmm.conf" <<-EOF
		address = "unix:$w/run/cvmm.sock";
		run_path = "$w/run";
		data_dir = "$w/data";
		plugin_dir = "$w/plugins";
		log_level = "info";
		workers = 4;
		serial_log_max = 1073741824;
		image = { path = "$images"; };
		cvm = {
		  backend = "libvirt";
		  max_allocable_vcpu = 8; max_allocable_memory_in_mb = 8192;
		  cid_start = 1000; cid_pool_size = 10;
		  networking = { mode = "user"; };
		  port_mapping = { enabled = false; };
		  auto_restart = { enabled = false; };
		};
		auth = { enabled = false; };
		plugins = [ "backend-libvirt", "net-user" ];
		plugin = { backend-libvirt = { uri = "$uri"; }; };
	EOF
	"$w/bin/cvmmd" -c "$w/cvmm.conf" >"$w/cvmmd.log" 2>&1 &
	_lvb_cvmmd_pid=$!
	local cvmm=("$w/bin/cvmm" --socket "$w/run/cvmm.sock") i
	for i in $(seq 100); do "${cvmm[@]}" list >/dev/null 2>&1 && break; sleep 0.1; done
	"${cvmm[@]}" list >/dev/null 2>&1 || { _lvb_say "cvmmd does not answer: $(tail -5 "$w/cvmmd.log")"; return 2; }

	"${cvmm[@]}" create lvboot --image tiny --no-start >/dev/null || return 2
	local id
	id=$("${cvmm[@]}" --json info lvboot | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
	local con=$w/data/vms/$id/console.log xml=$w/domain.xml

	state() { "${cvmm[@]}" --json info lvboot | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
	wait_state() {
		local s
		for i in $(seq 600); do
			s=$(state)
			[ "$s" = "$1" ] && return 0
			[ "$s" = failed ] && { _lvb_say "VM failed: $("${cvmm[@]}" info lvboot | grep -i reason)"; return 1; }
			sleep 0.05
		done
		return 1
	}
	size() { stat -c %s "$con" 2>/dev/null || echo 0; }

	# one boot through cvmm: prints "wall_ms cpu_ms launch_ms"
	boot_cvmm() {
		local off t0 t1 b0 st
		off=$(size)
		b0=$(_lvb_boot_ms)
		t0=$(_lvb_now_ms)
		"${cvmm[@]}" start lvboot >/dev/null || return 1
		t1=$(_lvb_wait_ready "$con" "$off") || { _lvb_say "cvmm boot: no ready line"; return 1; }
		st=$(_lvb_qemu_stats "$id")
		[ -f "$w/run/vms/$id/domain.xml" ] && cp "$w/run/vms/$id/domain.xml" "$xml"
		"${cvmm[@]}" kill lvboot >/dev/null
		wait_state stopped || return 1
		echo "$((t1 - t0)) ${st% *} $((${st#* } - b0))"
	}
	# one boot of the same XML through virsh: prints "wall_ms cpu_ms launch_ms"
	boot_virsh() {
		local off t0 t1 b0 st
		off=$(size)
		b0=$(_lvb_boot_ms)
		t0=$(_lvb_now_ms)
		"${virsh[@]}" create "$xml" >/dev/null || return 1
		t1=$(_lvb_wait_ready "$con" "$off") || { _lvb_say "virsh boot: no ready line"; return 1; }
		st=$(_lvb_qemu_stats "$id")
		"${virsh[@]}" destroy cvmm-lvboot >/dev/null
		echo "$((t1 - t0)) ${st% *} $((${st#* } - b0))"
	}

	_lvb_say "warm-up: one boot each way"
	boot_cvmm >/dev/null || return 2
	[ -s "$xml" ] || { _lvb_say "cvmm left no domain.xml in its run dir"; return 2; }
	boot_virsh >/dev/null || return 2

	local r a b x y z cw=() cc=() cl=() vw=() vc=() vl=()
	for r in $(seq "$runs"); do
		if ((r % 2)); then
			a=$(boot_cvmm) || return 2
			b=$(boot_virsh) || return 2
		else
			b=$(boot_virsh) || return 2
			a=$(boot_cvmm) || return 2
		fi
		read -r x y z <<<"$a"
		cw+=("$x") cc+=("$y") cl+=("$z")
		_lvb_say "run $r/$runs: cvmm $x ms (QEMU started after $z ms, its CPU $y ms)"
		read -r x y z <<<"$b"
		vw+=("$x") vc+=("$y") vl+=("$z")
		_lvb_say "run $r/$runs: virsh create $x ms (QEMU started after $z ms, its CPU $y ms)"
	done
	"${cvmm[@]}" remove lvboot >/dev/null

	local mcw mcc mcl mvw mvc mvl
	mcl=$(printf '%s\n' "${cl[@]}" | _lvb_median)
	mvl=$(printf '%s\n' "${vl[@]}" | _lvb_median)
	mcw=$(printf '%s\n' "${cw[@]}" | _lvb_median)
	mcc=$(printf '%s\n' "${cc[@]}" | _lvb_median)
	mvw=$(printf '%s\n' "${vw[@]}" | _lvb_median)
	mvc=$(printf '%s\n' "${vc[@]}" | _lvb_median)
	local pct pair_ms pair_pct k diffs=() rels=()
	pct=$(awk -v c="$mcw" -v v="$mvw" 'BEGIN {printf "%+.1f", v ? (c - v) * 100 / v : 0}')
	# Each run's two boots are neighbours in time and share its load: the
	# median of the per-run differences is the steadier figure on a busy host.
	for k in "${!cw[@]}"; do
		diffs+=($((cw[k] - vw[k])))
		rels+=("$(awk -v c="${cw[k]}" -v v="${vw[k]}" 'BEGIN {printf "%d", v ? (c - v) * 10000 / v : 0}')")
	done
	pair_ms=$(printf '%s\n' "${diffs[@]}" | _lvb_median)
	pair_pct=$(printf '%s\n' "${rels[@]}" | _lvb_median | awk '{printf "%+.1f", $1 / 100}')
	local verdict
	verdict=$(awk -v p="$pct" 'BEGIN {print (p <= 3.0) ? "yes" : "no"}')
	local lvver qver
	lvver=$("${virsh[@]}" version 2>/dev/null | awk '/Using library/ {print $NF}')
	qver=$("${virsh[@]}" version 2>/dev/null | awk '/Running hypervisor/ {print $NF}')

	cat <<-EOF
		### Boot to console line, image tiny: cvmm's libvirt backend vs \`virsh create\` of its XML

		libvirt ${lvver:-?}, QEMU ${qver:-?} (domain type qemu = TCG), $(nproc) CPUs; $runs runs each, alternating which goes first; medians.

		| path | boot to "cvmm-tiny: ready" (median) | command to QEMU process (median, 10 ms steps) | QEMU CPU at the line (median) | all runs, boot to line (ms) |
		|---|---|---|---|---|
		| \`cvmm start\` (backend-libvirt) | **$mcw ms** | $mcl ms | $mcc ms | ${cw[*]} |
		| \`virsh create domain.xml\` (the XML cvmm generated) | **$mvw ms** | $mvl ms | $mvc ms | ${vw[*]} |
		| cvmm overhead, medians | **$pct %** | $((mcl - mvl)) ms | | target ≤ 3 %: $verdict |
		| cvmm overhead, median of per-run differences | $pair_ms ms ($pair_pct %) | | | |

		The guest's boot is CPU-bound under TCG: wall time follows the QEMU's own CPU time, which varies with the host's load from run to run far more than the launcher does; the "command to QEMU process" column is the launcher's share alone.
	EOF
	if [ -n "${LVB_RESULT:-}" ]; then
		printf 'LVB_CVMM_MS=%s\nLVB_VIRSH_MS=%s\nLVB_OVERHEAD_PCT=%s\nLVB_PAIRED_MS=%s\nLVB_PAIRED_PCT=%s\nLVB_CVMM_CPU_MS=%s\nLVB_VIRSH_CPU_MS=%s\nLVB_CVMM_LAUNCH_MS=%s\nLVB_VIRSH_LAUNCH_MS=%s\n' \
			"$mcw" "$mvw" "$pct" "$pair_ms" "$pair_pct" "$mcc" "$mvc" "$mcl" "$mvl" >"$LVB_RESULT"
	fi
)

# Run when executed, not when sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	libvirt_boot_bench "$@"
fi
