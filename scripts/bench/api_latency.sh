#!/bin/bash
# api_latency.sh — how the API answers under load, and how fast the daemon
# comes back and reaches QEMU's exec: cvmm vs libvirt, side by side, in one
# run.  A benchmark, not a test: it prints a markdown table and exits 0
# whatever the figures are; non-zero only when something cannot run at all
# (not root, no build, a daemon that does not come up).
#
#   scripts/bench/api_latency.sh            (about 5-8 minutes, as root)
#
# Environment knobs (defaults in brackets):
#   N_START [20]      VMs / domains started at once in part 1
#   N_DEFINED [1000]  defined VMs / domains listed in part 2
#   N_LOOPERS [20]    list clients in part 2
#   LOOP_S [10]       seconds the list clients run (part 2)
#   IDLE_S [2]        seconds of idle samples before the burst of part 1
#   N_ADOPT [50]      running VMs / domains the restarted daemon finds (part 3)
#   ADOPT_RUNS [3]    kill -9 + restart rounds per daemon (part 3)
#   N_EXEC [10]       timed starts per path in part 4 (after one warm-up)
#   PAUSE_MS [2]      pause of the latency prober between two requests
#   PROBE_NICE [-10]  nice value of the latency prober (the list clients of
#                     part 2 run at 19): on a small shared host the figure is
#                     then the daemon's queueing, not the prober's or the
#                     clients' wait for a CPU; the same on both sides
#   PAR [4]           parallel sessions that define the VMs / domains of
#                     parts 2 and 3 (setup only, not measured)
#   IMAGE_DIR [/var/lib/cvmm/images]   where image "tiny" lives
#   BUILD [<repo>/build]               cvmmd, cvmm, plugins/*.so
#   BENCH_USER [cvmm-bench]  unprivileged user of the session libvirtd
#                     (created for the run and deleted afterwards)
#   KEEP [0]          1: keep the temp dir (logs, samples, traces)
#
# What it measures (every part runs cvmm first, then libvirt, with nothing
# of the other side running meanwhile but its idle daemon):
#  1. Latency of "host" and "one VM" requests while N_START VMs start at
#     once.  cvmm: GET /v1/host and GET /v1/vms/{id} of a stopped bystander
#     VM, each over a fresh connection (what the CLI does) and over one
#     kept-alive connection, round robin from one prober process; the burst
#     is N_START `cvmm start` processes at once (image tiny, 1 vCPU,
#     256 MiB, TCG), the window ends when all N_START are running.
#     libvirt: virConnectGetVersion (what `virsh version` asks) and the
#     calls of `virsh dominfo` (lookup, OS type, info, persistent, autostart,
#     managed save, security model and label: 8 RPCs) on a defined
#     bystander, over virConnectOpen+Close each time and over one open
#     connection; the burst is N_START `virsh create` processes at once
#     (same kernel, initrd, disk overlay, 1 vCPU, 256 MiB, type qemu = TCG),
#     the window ends when all have returned.  The prober is the same
#     python process in both cases (scripts/bench/api_latency.py), so the
#     client costs the same.
#  2. The same latencies while N_LOOPERS clients loop over N_DEFINED defined
#     VMs: GET /v1/vms (the whole list, kept-alive connection each) vs
#     virConnectListAllDomains (one open connection each), for LOOP_S
#     seconds after every client has done its first list.
#  3. Daemon start to serving with N_ADOPT running VMs: kill -9 of the
#     daemon, then exec of a new one; times to the first successful
#     GET /v1/host and to all N_ADOPT VMs listed running with a pid again,
#     vs libvirtd's first answer to virConnectListAllDomains (what
#     `virsh list` asks) and all N_ADOPT listed active.  The VMs run a
#     4-byte multiboot "kernel" that halts the vCPU (QEMU runs, its guest
#     costs no CPU), 128 MiB each, on both sides.
#  4. Start to QEMU's exec.  The QEMU binary is a static wrapper
#     (scripts/bench/qemu_stamp.c, compiled here) that records a
#     CLOCK_REALTIME stamp and execs the real QEMU; cvmm runs it through
#     plugin.backend-qemu.qemu, libvirt through <emulator>.  The clock starts
#     when the client sends POST /v1/vms/{id}/start (fresh connection), or
#     calls virDomainCreate (`virsh start`) / virDomainCreateXML
#     (`virsh create`).  With perf available, the execve syscall itself is
#     timed (perf record -a -e syscalls:sys_enter_execve,
#     sched:sched_process_exec, CLOCK_MONOTONIC); the wrapper's stamp minus
#     its own measured exec cost is the fallback.  A separate, traced start
#     (strace -f -ttt on the daemon) counts the syscalls from the request to
#     the exec: fsyncs (with their times) and close() calls.
#
# Everything it starts (cvmmd, libvirtd, virtlogd, QEMUs, probers, perf,
# strace, temp dir, bench user) is removed on exit, including on Ctrl-C.
set -u -o pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N_START=${N_START:-20}
N_DEFINED=${N_DEFINED:-1000}
N_LOOPERS=${N_LOOPERS:-20}
LOOP_S=${LOOP_S:-10}
IDLE_S=${IDLE_S:-2}
N_ADOPT=${N_ADOPT:-50}
ADOPT_RUNS=${ADOPT_RUNS:-3}
N_EXEC=${N_EXEC:-10}
PAUSE_MS=${PAUSE_MS:-2}
PROBE_NICE=${PROBE_NICE:--10}
PAR=${PAR:-4}
IMAGE_DIR=${IMAGE_DIR:-/var/lib/cvmm/images}
BUILD=${BUILD:-$ROOT/build}
BENCH_USER=${BENCH_USER:-cvmm-bench}
KEEP=${KEEP:-0}
USER_MARK="cvmm bench (temporary)"
QEMU_BIN=/usr/bin/qemu-system-x86_64
# the distribution's python: python3-libvirt is installed for it
PY=/usr/bin/python3

BENCH_NAME=api_latency
# say, die, alive, kill_wait, pids_using_w, the bench user, as_bench, libvirtd
. "$ROOT/scripts/bench/common.sh"

[ "$(id -u)" -eq 0 ] || die "run as root (it creates an unprivileged user for libvirt)"
((N_DEFINED > N_START + 1)) || N_DEFINED=$((N_START + 2))

# ---- prerequisites ------------------------------------------------------------

need_deps=0
for c in curl jq virsh libvirtd qemu-img setpriv useradd gcc strace "$QEMU_BIN"; do
	command -v "$c" >/dev/null 2>&1 || need_deps=1
done
"$PY" -c 'import libvirt' 2>/dev/null || need_deps=1
if ((need_deps)); then
	say "installing missing packages (scripts/install-deps.sh)"
	"$ROOT/scripts/install-deps.sh" >&2 || die "install-deps.sh failed"
	"$PY" -c 'import libvirt' 2>/dev/null || die "$PY cannot import libvirt (python3-libvirt)"
fi
for f in core/cvmmd core/cvmm plugins/backend-qemu.so plugins/net-user.so; do
	[ -e "$BUILD/$f" ] || die "missing $BUILD/$f (build first)"
done
[ -f "$IMAGE_DIR/tiny/metadata.json" ] ||
	die "image tiny missing under $IMAGE_DIR (scripts/build-test-guest.sh)"
KERNEL=$IMAGE_DIR/tiny/vmlinuz
INITRD=$IMAGE_DIR/tiny/initrd.img
HDA=$IMAGE_DIR/tiny/hda.qcow2

# ---- state and cleanup ----------------------------------------------------------

W=$(mktemp -d /tmp/cvmm-apilat.XXXXXX) || die "mktemp failed"
chmod 755 "$W"
CV=$W/cvmm
LV=$W/libvirt
OUT=$W/out
mkdir -p "$CV" "$OUT" "$W/bin" "$W/plugins" "$W/images/halt" "$W/stamps"
chmod 777 "$OUT"
CVMMD=$W/bin/cvmmd
CVMM=$W/bin/cvmm
HELPER=$W/bin/api_latency.py
CVMMD_PID=
BG_PIDS=()
CLEANED=0

cleanup() {
	((CLEANED)) && return
	CLEANED=1
	trap '' INT TERM
	say "cleaning up"
	local p
	for p in "${BG_PIDS[@]}"; do kill_wait "$p" 3; done
	# cvmmd first (it would restart what is killed), then every QEMU of ours
	kill_wait "$CVMMD_PID" 10
	kill_wait "$LIBVIRTD_PID" 10
	for p in $(pids_using_w); do kill -KILL "$p" 2>/dev/null; done
	bench_user_cleanup
	if [ "$KEEP" = 1 ]; then
		say "kept $W"
	else
		rm -rf "$W"
	fi
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM HUP

# A snapshot of the build: the tree may be rebuilt while the bench runs.
cp "$BUILD/core/cvmmd" "$BUILD/core/cvmm" "$W/bin/" &&
	cp "$BUILD/plugins/backend-qemu.so" "$BUILD/plugins/net-user.so" "$W/plugins/" &&
	cp "$ROOT/scripts/bench/api_latency.py" "$HELPER" ||
	die "cannot copy the build from $BUILD"
chmod 755 "$HELPER"

# The exec-stamp wrappers (one per side: each writes its own file), static
# when the C library allows it (a smaller exec cost to subtract).
for side in cvmm libvirt; do
	: >"$W/stamps/$side"
	chmod 666 "$W/stamps/$side"
	gcc -O2 -static -Wall -Wextra -DSTAMP_FILE="\"$W/stamps/$side\"" -DREAL_QEMU="\"$QEMU_BIN\"" \
		-o "$W/bin/qemu-stamp-$side" "$ROOT/scripts/bench/qemu_stamp.c" 2>"$W/gcc.err" ||
		gcc -O2 -Wall -Wextra -DSTAMP_FILE="\"$W/stamps/$side\"" -DREAL_QEMU="\"$QEMU_BIN\"" \
			-o "$W/bin/qemu-stamp-$side" "$ROOT/scripts/bench/qemu_stamp.c" 2>>"$W/gcc.err" ||
		die "cannot compile qemu_stamp.c: $(cat "$W/gcc.err")"
done
STAMP_STATIC=$(file -b "$W/bin/qemu-stamp-cvmm" 2>/dev/null | grep -q static && echo static || echo dynamic)

# The halting guest of part 3: a multiboot image (a.out kludge, loaded at
# 1 MiB) whose code is "cli; hlt; jmp .-1".
"$PY" - "$W/images/halt/halt.bin" <<'EOF' || die "cannot write the halt kernel"
import struct, sys
magic, flags, base = 0x1BADB002, 0x00010000, 0x100000
hdr = struct.pack("<8I", magic, flags, (-(magic + flags)) & 0xFFFFFFFF, base, base, 0, 0, base + 32)
open(sys.argv[1], "wb").write(hdr + bytes([0xFA, 0xF4, 0xEB, 0xFD]) + bytes(28))
EOF
echo '{"kernel": "halt.bin", "cmdline": "halt"}' >"$W/images/halt/metadata.json"
ln -s "$IMAGE_DIR/tiny" "$W/images/tiny"
chmod -R a+rX "$W/images" "$W/bin"

# ---- statistics ---------------------------------------------------------------------

# pstats FILE KIND T_FROM T_TO -> "p50 p99 max n failed" (ms) of the probe
# samples of KIND taken in [T_FROM, T_TO] (epoch seconds)
pstats() {
	awk -v k="$2" -v a="$3" -v b="$4" '$2 == k && $1 >= a && $1 <= b { print $3, $4 }' "$1" 2>/dev/null |
		sort -g | awk '{ v[NR] = $1; if (!$2) bad++ }
		END {
			if (NR == 0) { print "nan nan nan 0 0"; exit }
			i50 = int(NR * 0.50 + 0.999999); if (i50 < 1) i50 = 1
			i99 = int(NR * 0.99 + 0.999999); if (i99 < 1) i99 = 1
			printf "%.1f %.1f %.1f %d %d\n", v[i50], v[i99], v[NR], NR, bad
		}'
}
# cell FILE KIND FROM TO -> "p50 / **p99** ms (max, n)"
cell() {
	local p50 p99 mx n bad
	read -r p50 p99 mx n bad <<<"$(pstats "$@")"
	printf '%s / **%s** ms (max %s; n=%s%s)' "$p50" "$p99" "$mx" "$n" "$( ((bad)) && echo ", $bad failed")"
}
p99_of() { pstats "$@" | cut -d' ' -f2; }
# vstats -> "median min max n" of the numbers on stdin
vstats() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan nan nan 0"; exit }
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.1f %.1f %.1f %d\n", m, v[1], v[NR], NR }'
}
vcell() { # column of FILE (1-based) -> "median X ms (min, max; n)"
	local m mi ma n
	read -r m mi ma n <<<"$(awk -v c="$2" '{ print $c }' "$1" 2>/dev/null | vstats)"
	printf '%s ms (min %s, max %s; n=%s)' "$m" "$mi" "$ma" "$n"
}
verdict() { # VALUE MAX -> met / NOT met
	awk -v v="$1" -v t="$2" 'BEGIN { if (v == "nan" || v == "") print "n/a"; else print (v + 0 <= t) ? "met" : "**NOT met**" }'
}
now() { echo "$EPOCHREALTIME"; }

# ---- cvmm ---------------------------------------------------------------------------

# write_conf FILE DIR QEMU: a config shaped like conf/cvmm.conf (as in
# scripts/bench.sh), state under DIR, large limits
write_conf() {
	mkdir -p "$2/run" "$2/data"
	cat >"$1" <<EOF
address = "unix:$2/cvmm.sock";
run_path = "$2/run";
data_dir = "$2/data";
plugin_dir = "$W/plugins";
log_level = "info";
node_name = "bench";
workers = 4;
serial_log_max = 1048576;
image = { path = "$W/images"; };
cvm = {
  backend = "qemu";
  max_allocable_vcpu = 4000;
  max_allocable_memory_in_mb = 2000000;
  cid_start = 1000;
  cid_pool_size = 4000;
  networking = { mode = "user"; net = "10.0.2.0/24"; dhcp_start = "10.0.2.10"; restrict = false; };
  port_mapping = { enabled = false; };
  auto_restart = { enabled = true; interval = 20; max_retries = 5; initial_backoff = 1.0;
                   max_backoff = 60.0; reset_window = 300.0; };
};
auth = { enabled = false; };
plugins = [ "backend-qemu", "net-user" ];
plugin = { backend-qemu = { accel = "tcg"; qemu = "$3"; }; };
EOF
}

# start_cvmmd CONF DIR: starts cvmmd, waits until GET /v1/host answers
start_cvmmd() {
	local i
	"$CVMMD" -c "$1" --check-config >"$2/check-config.log" 2>&1 ||
		die "cvmmd --check-config rejected $1: $(cat "$2/check-config.log")"
	SOCK=$2/cvmm.sock
	"$CVMMD" -c "$1" >>"$2/cvmmd.log" 2>&1 &
	CVMMD_PID=$!
	for ((i = 0; i < 200; i++)); do
		curl -sf --unix-socket "$SOCK" http://cvmm/v1/host >/dev/null 2>&1 && return 0
		kill -0 "$CVMMD_PID" 2>/dev/null || die "cvmmd exited: $(tail -5 "$2/cvmmd.log")"
		sleep 0.05
	done
	die "cvmmd does not answer on $SOCK"
}

api() { # METHOD PATH [BODY]: prints the body; fails on a non-2xx answer
	curl -sf --unix-socket "$SOCK" -X "$1" -H 'Content-Type: application/json' \
		${3:+--data "$3"} "http://cvmm$2"
}
# cv_create NAME IMAGE MEMORY_MB -> prints the id
cv_create() {
	api POST /v1/vms "{\"name\": \"$1\", \"image\": \"$2\", \"vcpu\": 1, \"memory_mb\": $3, \"start\": false}" |
		jq -r .id
}
cv_count() { # STATE [PREFIX] -> number of VMs in that state (name starting with PREFIX)
	api GET '/v1/vms?fields=name,state,pid' |
		jq --arg s "$1" --arg p "${2:-}" '[.vms[] | select(.state == $s and (.name | startswith($p)))] | length'
}
cv_states() { # PREFIX -> "state:count ..." of those VMs
	api GET '/v1/vms?fields=name,state' |
		jq -r --arg p "$1" '[.vms[] | select(.name | startswith($p)) | .state] | group_by(.) |
			map("\(.[0]):\(length)") | join(" ")'
}
# cv_wait_all STATE N PREFIX TIMEOUT_S: until N VMs are in STATE; 1 on timeout
cv_wait_all() {
	local end=$((SECONDS + $4))
	while ((SECONDS < end)); do
		[ "$(cv_count "$1" "$3" 2>/dev/null)" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
check_cvmmd() {
	alive "$CVMMD_PID" && return 0
	say "cvmmd (pid $CVMMD_PID) is gone during: $1; end of its log:"
	tail -15 "$CV"/*/cvmmd.log >&2
	die "cvmmd gone"
}

# ---- libvirt ----------------------------------------------------------------------------

bench_user_setup
mkdir -p "$LV/disks" "$LV/console" "$LV/xml"
chown "$BENCH_UID:$BENCH_GID" "$LV/disks" "$LV/console" "$LV/xml" "$W/stamps/libvirt"
LVSOCK=$LV/run/libvirt/libvirt-sock
LVURI="qemu+unix:///session?socket=$LVSOCK"
VIRSH=(as_bench virsh -q -c "$LVURI")
# the same, as a simple command (so that "$!" of a background one is its pid)
AS_BENCH=(setpriv --reuid="$BENCH_UID" --regid="$BENCH_GID" --clear-groups env -i "${LV_ENV[@]}")

# lv_xml NAME MEMORY_MB KERNEL [INITRD] [DISK] [EMULATOR] [UUID] -> domain XML
lv_xml() {
	cat <<EOF
<domain type='qemu'>
  <name>$1</name>
  ${7:+<uuid>$7</uuid>}
  <memory unit='MiB'>$2</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$3</kernel>
    ${4:+<initrd>$4</initrd>}
    <cmdline>console=ttyS0 panic=-1 quiet</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>${6:-$QEMU_BIN}</emulator>
    ${5:+<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$5'/><target dev='vda' bus='virtio'/></disk>}
    <serial type='file'><source path='$LV/console/$1.log'/></serial>
  </devices>
</domain>
EOF
}
lv_overlay() { # NAME -> path of a fresh qcow2 overlay on the image's disk
	local f=$LV/disks/$1.qcow2
	as_bench qemu-img create -q -f qcow2 -b "$HDA" -F qcow2 "$f" >/dev/null 2>&1 ||
		say "warning: qemu-img create $f failed"
	echo "$f"
}
lv_active() { "${VIRSH[@]}" list --name 2>/dev/null | grep -c .; }

# ---- environment -----------------------------------------------------------------------

QEMU_VER=$("$QEMU_BIN" --version | head -1)
LV_VER=$(libvirtd --version 2>/dev/null | head -1)
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
say "temp dir $W"

"$W/bin/qemu-stamp-cvmm" --calibrate 30 >"$OUT/calib" 2>/dev/null
CALIB_US=$(vstats <"$OUT/calib" | cut -d' ' -f1)
CALIB_MS=$(awk -v u="$CALIB_US" 'BEGIN { printf "%.2f", u / 1000 }')

say "starting cvmmd (part 1-2 instance)"
write_conf "$CV/conf1" "$CV/a" "$QEMU_BIN"
start_cvmmd "$CV/conf1" "$CV/a"
CVMMD_PID_A=$CVMMD_PID

say "starting libvirtd (session mode as $BENCH_USER)"
libvirtd_session_start "$LV/libvirtd.log"
"${VIRSH[@]}" domcapabilities >/dev/null 2>&1 # the capability probe, out of the way

# start_probe KIND TARGET VM OUTFILE STOPFILE: background prober (libvirt's
# as the bench user); its pid in PROBE_PID
start_probe() {
	rm -f "$5"
	if [ "$1" = cvmm ]; then
		nice -n "$PROBE_NICE" "$PY" "$HELPER" probe --kind cvmm --target "$2" --vm "$3" --out "$4" --stop "$5" \
			--pause-ms "$PAUSE_MS" 2>>"$OUT/helper.err" &
	else
		nice -n "$PROBE_NICE" "${AS_BENCH[@]}" "$PY" "$HELPER" probe --kind libvirt --target "$2" --vm "$3" --out "$4" \
			--stop "$5" --pause-ms "$PAUSE_MS" 2>>"$OUT/helper.err" &
	fi
	PROBE_PID=$!
	BG_PIDS+=("$PROBE_PID")
}
stop_bg() { # STOPFILE PID...: touch the stop file, wait for them (10 s), kill if needed
	local f=$1 p i
	shift
	touch "$f"
	for p in "$@"; do
		for ((i = 0; i < 200; i++)); do alive "$p" || break; sleep 0.05; done
		kill_wait "$p" 2
	done
	BG_PIDS=()
}

# ---- 1. while N_START VMs start at once ------------------------------------------------

vmname() { printf '%s-%02d' "$1" "$2"; }

say "part 1, cvmm: $N_START VMs starting at once"
for ((i = 1; i <= N_START; i++)); do
	cv_create "$(vmname burst "$i")" tiny 256 >/dev/null || die "cvmm: cannot create $(vmname burst "$i")"
done
PROBE_ID=$(cv_create probe tiny 256) || die "cvmm: cannot create the probe VM"
start_probe cvmm "$SOCK" "$PROBE_ID" "$OUT/p1_cvmm" "$OUT/p1_cvmm.stop"
sleep "$IDLE_S"
C1_B=$(now)
pids=()
for ((i = 1; i <= N_START; i++)); do
	"$CVMM" --socket "$SOCK" start "$(vmname burst "$i")" >>"$OUT/p1_cvmm.cli" 2>&1 &
	pids+=($!)
done
wait "${pids[@]}"
C1_CLI=$(awk -v a="$C1_B" -v b="$(now)" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
cv_wait_all running "$N_START" burst- 180 || say "warning: cvmm: not all $N_START running after 180 s: $(cv_states burst-)"
C1_E=$(now)
stop_bg "$OUT/p1_cvmm.stop" "$PROBE_PID"
C1_WIN=$(awk -v a="$C1_B" -v b="$C1_E" 'BEGIN { printf "%.1f", b - a }')
C1_FINAL=$(cv_states burst-)
check_cvmmd "part 1"
for ((i = 1; i <= N_START; i++)); do api POST "/v1/vms/$(vmname burst "$i")/kill" >/dev/null 2>&1; done
cv_wait_all running 0 burst- 60 || say "warning: cvmm: burst VMs still running: $(cv_states burst-)"

say "part 1, libvirt: $N_START domains starting at once (virsh create)"
for ((i = 1; i <= N_START; i++)); do
	n=$(vmname burst "$i")
	lv_xml "$n" 256 "$KERNEL" "$INITRD" "$(lv_overlay "$n")" >"$LV/xml/$n.xml"
done
lv_xml probe 256 "$KERNEL" "$INITRD" >"$LV/xml/probe.xml"
chown -R "$BENCH_UID:$BENCH_GID" "$LV/xml"
"${VIRSH[@]}" define "$LV/xml/probe.xml" >/dev/null || die "virsh define probe failed"
start_probe libvirt "$LVURI" probe "$OUT/p1_lv" "$OUT/p1_lv.stop"
sleep "$IDLE_S"
L1_B=$(now)
pids=()
for ((i = 1; i <= N_START; i++)); do
	"${AS_BENCH[@]}" virsh -q -c "$LVURI" create "$LV/xml/$(vmname burst "$i").xml" >>"$OUT/p1_lv.cli" 2>&1 &
	pids+=($!)
done
wait "${pids[@]}"
L1_E=$(now)
stop_bg "$OUT/p1_lv.stop" "$PROBE_PID"
L1_WIN=$(awk -v a="$L1_B" -v b="$L1_E" 'BEGIN { printf "%.1f", b - a }')
L1_FINAL="running:$(lv_active)"
for ((i = 1; i <= N_START; i++)); do echo "destroy $(vmname burst "$i")"; done | "${VIRSH[@]}" >/dev/null 2>&1

# ---- 2. while N_LOOPERS clients list N_DEFINED VMs ---------------------------------------

# set by run_loopers (printf -v)
p2_cvmm_B=0 p2_cvmm_E=0 p2_cvmm_RATE='?' p2_lv_B=0 p2_lv_E=0 p2_lv_RATE='?'
# run_loopers KIND TARGET PROBE_VM TAG: N_LOOPERS list clients + the prober;
# sets B/E (the window) of TAG
run_loopers() {
	local kind=$1 target=$2 vm=$3 tag=$4 i pids=() end
	local stop=$OUT/${tag}.stop
	rm -f "$stop" "$OUT/$tag".ready.* "$OUT/$tag".loop.*
	start_probe "$kind" "$target" "$vm" "$OUT/$tag" "$stop"
	pids+=("$PROBE_PID")
	for ((i = 1; i <= N_LOOPERS; i++)); do
		if [ "$kind" = cvmm ]; then
			nice -n 19 "$PY" "$HELPER" loop --kind cvmm --target "$target" --stop "$stop" \
				--ready "$OUT/$tag.ready.$i" --out "$OUT/$tag.loop.$i" 2>>"$OUT/helper.err" &
		else
			nice -n 19 "${AS_BENCH[@]}" "$PY" "$HELPER" loop --kind libvirt --target "$target" --stop "$stop" \
				--ready "$OUT/$tag.ready.$i" --out "$OUT/$tag.loop.$i" 2>>"$OUT/helper.err" &
		fi
		pids+=($!)
		BG_PIDS+=($!)
	done
	end=$((SECONDS + 60))
	while (($(ls "$OUT/$tag".ready.* 2>/dev/null | wc -l) < N_LOOPERS)) && ((SECONDS < end)); do sleep 0.05; done
	(($(ls "$OUT/$tag".ready.* 2>/dev/null | wc -l) == N_LOOPERS)) ||
		say "warning: $tag: only $(ls "$OUT/$tag".ready.* 2>/dev/null | wc -l) of $N_LOOPERS list clients got a first answer within 60 s"
	printf -v "${tag}_B" '%s' "$(now)"
	sleep "$LOOP_S"
	printf -v "${tag}_E" '%s' "$(now)"
	stop_bg "$stop" "${pids[@]}"
	# lists per second over all clients (counted from their start, a slight underestimate)
	printf -v "${tag}_RATE" '%s' "$(cat "$OUT/$tag".loop.* 2>/dev/null |
		awk -v s="$LOOP_S" '{ n += $1; b += $2; e += $3 } END { printf "%.1f lists/s, %d failed", n / s, e }')"
}

say "part 2, cvmm: defining up to $N_DEFINED VMs"
# cv_bulk_create PREFIX FROM TO IMAGE MEMORY_MB START: creates PREFIX-NNNN
# over PAR kept-alive curl sessions at once
cv_bulk_create() {
	local k pids=()
	for ((k = 0; k < PAR; k++)); do
		awk -v sock="$SOCK" -v p="$1" -v a="$2" -v b="$3" -v img="$4" -v mem="$5" -v st="$6" \
			-v k="$k" -v par="$PAR" 'BEGIN {
			first = 1
			for (i = a; i <= b; i++) {
				if (i % par != k) continue
				if (!first) print "next"; first = 0
				printf "unix-socket = \"%s\"\nurl = \"http://cvmm/v1/vms\"\n", sock
				print "header = \"Content-Type: application/json\""
				printf "data = \"{\\\"name\\\": \\\"%s-%04d\\\", \\\"image\\\": \\\"%s\\\", ", p, i, img
				printf "\\\"memory_mb\\\": %d, \\\"start\\\": %s}\"\n", mem, st
				print "output = \"/dev/null\"\nwrite-out = \"%{http_code}\\n\""
			} }' >"$OUT/create.$1.$k.curl"
		[ -s "$OUT/create.$1.$k.curl" ] || continue
		curl -s -K "$OUT/create.$1.$k.curl" >>"$OUT/create.$1.$k.codes" 2>/dev/null &
		pids+=($!)
	done
	wait "${pids[@]}"
	cat "$OUT/create.$1".*.codes 2>/dev/null | grep -vc '^20[01]$' | awk '$1 > 0 { print "cvmm: " $1 " creates failed" }' >&2
}
cv_bulk_create def $((N_START + 2)) "$N_DEFINED" tiny 256 false
C2_COUNT=$(api GET '/v1/vms?fields=name' | jq '.vms | length')
((C2_COUNT == N_DEFINED)) || say "warning: cvmm has $C2_COUNT VMs, expected $N_DEFINED"
C2_BYTES=$(api GET /v1/vms | wc -c)
say "part 2, cvmm: $N_LOOPERS clients looping GET /v1/vms for $LOOP_S s"
run_loopers cvmm "$SOCK" "$PROBE_ID" p2_cvmm
check_cvmmd "part 2"

say "part 2, libvirt: defining up to $N_DEFINED domains"
# lv_bulk VERB PREFIX FROM TO MEMORY_MB KERNEL [INITRD]: one XML per domain
# from a template, then "VERB file" over PAR virsh sessions at once
lv_bulk() {
	local k pids=() tmpl
	tmpl=$(lv_xml @NAME@ "$5" "$6" "${7:-}")
	for ((k = 0; k < PAR; k++)); do : >"$LV/$1.$2.$k.virsh"; done
	for ((i = $3; i <= $4; i++)); do
		n=$(printf '%s-%04d' "$2" "$i")
		echo "${tmpl//@NAME@/$n}" >"$LV/xml/$n.xml"
		echo "$1 $LV/xml/$n.xml" >>"$LV/$1.$2.$((i % PAR)).virsh"
	done
	chown -R "$BENCH_UID:$BENCH_GID" "$LV/xml" "$LV"/*.virsh
	for ((k = 0; k < PAR; k++)); do
		"${AS_BENCH[@]}" virsh -q -c "$LVURI" <"$LV/$1.$2.$k.virsh" >/dev/null 2>>"$OUT/$1.$2.err" &
		pids+=($!)
	done
	wait "${pids[@]}"
}
lv_bulk define def 2 "$N_DEFINED" 256 "$KERNEL" "$INITRD"
L2_COUNT=$("${VIRSH[@]}" list --all --name 2>/dev/null | grep -c .)
# the burst's domains were transient: probe + the defined ones
((L2_COUNT == N_DEFINED)) || say "warning: libvirt has $L2_COUNT domains, expected $N_DEFINED: $(head -2 "$OUT/define.def.err")"
say "part 2, libvirt: $N_LOOPERS clients looping virConnectListAllDomains for $LOOP_S s"
run_loopers libvirt "$LVURI" probe p2_lv

# ---- 4. start -> QEMU exec (a fresh cvmmd and an empty libvirtd) ---------------------------

say "stopping the part 1-2 cvmmd; libvirtd restarted with no domains"
kill_wait "$CVMMD_PID_A" 10
CVMMD_PID=
kill_wait "$LIBVIRTD_PID" 10
rm -f "$LV"/config/libvirt/qemu/*.xml "$LV"/config/libvirt/qemu/autostart/*.xml
libvirtd_session_start "$LV/libvirtd.log"

write_conf "$CV/conf2" "$CV/b" "$W/bin/qemu-stamp-cvmm"
start_cvmmd "$CV/conf2" "$CV/b"

PERF_PID=
if command -v perf >/dev/null && perf record -q -k mono -e sched:sched_process_exec -o "$W/perf.test" -a -- true \
	>/dev/null 2>&1; then
	perf record -q -k mono -e syscalls:sys_enter_execve -e sched:sched_process_exec -a \
		-o "$W/perf.data" >"$OUT/perf.log" 2>&1 &
	PERF_PID=$!
	BG_PIDS+=("$PERF_PID")
	sleep 1
fi

say "part 4, cvmm: POST start -> QEMU exec, $N_EXEC runs"
EXEC_ID=$(cv_create exec-vm tiny 256) || die "cvmm: cannot create exec-vm"
"$PY" "$HELPER" execstart --kind cvmm --target "$SOCK" --vm "$EXEC_ID" --uuid "$EXEC_ID" \
	--stamps "$W/stamps/cvmm" --runs "$N_EXEC" --warmup 1 --out "$OUT/exec_cvmm" 2>>"$OUT/helper.err"

say "part 4, libvirt: virsh start / virsh create -> QEMU exec, $N_EXEC runs each"
EXEC_UUID=3b0e4a8e-5d1c-4c57-9a3e-0c2f1d6b7a01
EXEC_UUID2=3b0e4a8e-5d1c-4c57-9a3e-0c2f1d6b7a02
lv_xml exec-vm 256 "$KERNEL" "$INITRD" "$(lv_overlay exec-vm)" "$W/bin/qemu-stamp-libvirt" "$EXEC_UUID" \
	>"$LV/xml/exec-vm.xml"
lv_xml exec-tr 256 "$KERNEL" "$INITRD" "$(lv_overlay exec-tr)" "$W/bin/qemu-stamp-libvirt" "$EXEC_UUID2" \
	>"$LV/xml/exec-tr.xml"
chown -R "$BENCH_UID:$BENCH_GID" "$LV/xml"
"${VIRSH[@]}" define "$LV/xml/exec-vm.xml" >/dev/null || die "virsh define exec-vm failed"
"${AS_BENCH[@]}" "$PY" "$HELPER" execstart --kind libvirt --target "$LVURI" --mode start --vm exec-vm \
	--uuid "$EXEC_UUID" --stamps "$W/stamps/libvirt" --runs "$N_EXEC" --warmup 1 \
	--out "$OUT/exec_lv_start" 2>>"$OUT/helper.err"
"${AS_BENCH[@]}" "$PY" "$HELPER" execstart --kind libvirt --target "$LVURI" --mode createxml \
	--xml "$LV/xml/exec-tr.xml" --uuid "$EXEC_UUID2" --stamps "$W/stamps/libvirt" --runs "$N_EXEC" \
	--warmup 1 --out "$OUT/exec_lv_create" 2>>"$OUT/helper.err"

PERF_NOTE="perf not usable here: the wrapper's stamp minus its own exec cost is used"
if [ -n "$PERF_PID" ]; then
	kill -INT "$PERF_PID" 2>/dev/null
	kill_wait "$PERF_PID" 10
	BG_PIDS=()
	perf script -i "$W/perf.data" -F pid,time,event,trace >"$W/perf.txt" 2>/dev/null
	for f in exec_cvmm:qemu-stamp-cvmm exec_lv_start:qemu-stamp-libvirt exec_lv_create:qemu-stamp-libvirt; do
		"$PY" "$HELPER" perfexec --perf "$W/perf.txt" --runs "$OUT/${f%%:*}" --exe "$W/bin/${f#*:}" \
			>"$OUT/${f%%:*}.perf" 2>>"$OUT/helper.err"
	done
	PERF_NOTE="perf record -a (CLOCK_MONOTONIC): entry of the execve syscall of the wrapper, and the exec done (sched_process_exec)"
fi

say "part 4: one traced start each (strace -f -ttt on the daemon)"
strace_start() { # PID LOG: strace in the background, STRACE_PID
	strace -f -ttt -qq -o "$2" -p "$1" 2>"$2.err" &
	STRACE_PID=$!
	BG_PIDS+=("$STRACE_PID")
	sleep 1
}
strace_stop() {
	kill -INT "$STRACE_PID" 2>/dev/null
	kill_wait "$STRACE_PID" 10
	BG_PIDS=()
}
strace_start "$CVMMD_PID" "$W/strace.cvmm"
"$PY" "$HELPER" execstart --kind cvmm --target "$SOCK" --vm "$EXEC_ID" --uuid "$EXEC_ID" \
	--stamps "$W/stamps/cvmm" --runs 1 --warmup 0 --out "$OUT/exec_cvmm_strace" 2>>"$OUT/helper.err"
strace_stop
read -r t0 _ _ _ trun <<<"$(cat "$OUT/exec_cvmm_strace")"
"$PY" "$HELPER" strace --log "$W/strace.cvmm" --t0 "${t0:-0}" \
	--t1 "$(awk -v a="${t0:-0}" -v r="${trun:-0}" 'BEGIN { printf "%.6f", a + r / 1000 }')" \
	--exe "$W/bin/qemu-stamp-cvmm" >"$OUT/strace_cvmm.json" 2>>"$OUT/helper.err"
strace_start "$LIBVIRTD_PID" "$W/strace.lv"
"${AS_BENCH[@]}" "$PY" "$HELPER" execstart --kind libvirt --target "$LVURI" --mode start --vm exec-vm \
	--uuid "$EXEC_UUID" --stamps "$W/stamps/libvirt" --runs 1 --warmup 0 \
	--out "$OUT/exec_lv_strace" 2>>"$OUT/helper.err"
strace_stop
read -r t0 _ _ _ trun <<<"$(cat "$OUT/exec_lv_strace")"
"$PY" "$HELPER" strace --log "$W/strace.lv" --t0 "${t0:-0}" \
	--t1 "$(awk -v a="${t0:-0}" -v r="${trun:-0}" 'BEGIN { printf "%.6f", a + r / 1000 }')" \
	--exe "$W/bin/qemu-stamp-libvirt" >"$OUT/strace_lv.json" 2>>"$OUT/helper.err"
"${VIRSH[@]}" undefine exec-vm >/dev/null 2>&1
api DELETE "/v1/vms/$EXEC_ID" >/dev/null 2>&1

# ---- 3. daemon start to serving with N_ADOPT running VMs -------------------------------------

say "part 3, cvmm: starting $N_ADOPT halting VMs"
cv_bulk_create adopt 1 "$N_ADOPT" halt 128 true
cv_wait_all running "$N_ADOPT" adopt- 300 || say "warning: cvmm: not all $N_ADOPT running: $(cv_states adopt-)"
: >"$OUT/adopt_cvmm"
for ((r = 1; r <= ADOPT_RUNS; r++)); do
	check_cvmmd "part 3"
	disown "$CVMMD_PID" 2>/dev/null # no "Killed" job notice
	kill -KILL "$CVMMD_PID"
	kill_wait "$CVMMD_PID" 5
	sleep 0.5
	res=$("$PY" "$HELPER" restart --kind cvmm --target "$SOCK" --n "$N_ADOPT" --log "$CV/b/cvmmd.log" \
		-- "$CVMMD" -c "$CV/conf2" 2>>"$OUT/helper.err")
	echo "$res" >>"$OUT/adopt_cvmm"
	p=$(jq -r '.pid // empty' <<<"$res")
	[ -n "$p" ] && CVMMD_PID=$p
	say "  cvmm restart $r: $res"
	sleep 1
done
C3_FINAL=$(cv_states adopt-)
for ((i = 1; i <= N_ADOPT; i++)); do api POST "/v1/vms/$(printf 'adopt-%04d' "$i")/kill" >/dev/null 2>&1; done

say "part 3, libvirt: starting $N_ADOPT halting domains"
lv_bulk create adopt 1 "$N_ADOPT" 128 "$W/images/halt/halt.bin"
(($(lv_active) == N_ADOPT)) || say "warning: libvirt: $(lv_active) of $N_ADOPT domains running: $(head -3 "$OUT/create.adopt.err")"
: >"$OUT/adopt_lv"
for ((r = 1; r <= ADOPT_RUNS; r++)); do
	disown "$LIBVIRTD_PID" 2>/dev/null
	kill -KILL "$LIBVIRTD_PID"
	kill_wait "$LIBVIRTD_PID" 5
	sleep 0.5
	res=$("${AS_BENCH[@]}" "$PY" "$HELPER" restart --kind libvirt --target "$LVURI" --n "$N_ADOPT" \
		--log "$OUT/libvirtd.restarted.log" -- /usr/sbin/libvirtd 2>>"$OUT/helper.err")
	echo "$res" >>"$OUT/adopt_lv"
	p=$(jq -r '.pid // empty' <<<"$res")
	[ -n "$p" ] && LIBVIRTD_PID=$p
	say "  libvirtd restart $r: $res"
	sleep 1
done
L3_FINAL="running:$(lv_active)"

# ---- report ---------------------------------------------------------------------------------

adopt_cell() { # FILE FIELD -> "median X ms (all runs)"
	local vals
	vals=$(jq -r ".$2 // empty" "$1" 2>/dev/null | tr '\n' ' ')
	printf '%s ms (runs: %s)' "$(tr ' ' '\n' <<<"$vals" | grep . | vstats | cut -d' ' -f1)" "${vals% }"
}
adopt_med() { jq -r ".$2 // empty" "$1" 2>/dev/null | vstats | cut -d' ' -f1; }
# part 4 columns: exec_X = "t0 t0_mono resp_ms stamp_ms ret_or_running_ms"; .perf = "enter_ms done_ms"
stamp_corr() { awk -v c="$CALIB_MS" '{ printf "%.3f\n", $4 - c }' "$1" 2>/dev/null; }
exec_med() { # FILE -> the primary exec figure's median (perf entry, else corrected stamp)
	if [ -s "$1.perf" ]; then awk '{ print $1 }' "$1.perf" | vstats | cut -d' ' -f1; else stamp_corr "$1" | vstats | cut -d' ' -f1; fi
}
exec_cell() {
	local m mi ma n
	if [ -s "$1.perf" ]; then
		read -r m mi ma n <<<"$(awk '{ print $1 }' "$1.perf" | vstats)"
		printf '**%s ms** (min %s, max %s; n=%s; exec done: %s ms)' "$m" "$mi" "$ma" "$n" \
			"$(awk '{ print $2 }' "$1.perf" | vstats | cut -d' ' -f1)"
	else
		read -r m mi ma n <<<"$(stamp_corr "$1" | vstats)"
		printf '**%s ms** (min %s, max %s; n=%s)' "$m" "$mi" "$ma" "$n"
	fi
}
corr_cell() {
	local m mi ma n
	read -r m mi ma n <<<"$(stamp_corr "$1" | vstats)"
	printf '%s ms (min %s, max %s)' "$m" "$mi" "$ma"
}
sj() { jq -r "$2" "$1" 2>/dev/null; }

cat <<EOF

## API latency under load, restart, start→exec: cvmm vs libvirt — $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname)

Environment: $(nproc) CPUs ($CPU_MODEL), $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r),
$QEMU_VER, $LV_VER. TCG on both sides. cvmm: $(git -C "$ROOT" log -1 --format='%h %s' 2>/dev/null | cut -c1-70) (build: $BUILD).
libvirt: session libvirtd as $BENCH_USER, all its state under the temp dir. Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg).
Latencies: p50 / **p99** in ms, measured by one python client process (scripts/bench/api_latency.py, at nice ${PROBE_NICE};
the list clients of part 2 at nice 19, so that the figures are the daemons' own queueing), one
request at a time with ${PAUSE_MS} ms pauses, round robin over the four kinds. "fresh" = new connection per request
(cvmm: connect + HTTP request on the unix socket, like the CLI; libvirt: virConnectOpen + calls + virConnectClose,
like a virsh process minus its exec); "kept" = one connection kept open. The libvirt "one VM" request is the 8 RPCs
\`virsh dominfo\` makes; cvmm's is one GET.

| # | measurement | cvmm | libvirt | target (cvmm) |
|---|---|---|---|---|
| 1 | idle (${IDLE_S} s before the burst): host, fresh | $(cell "$OUT/p1_cvmm" host_fresh 0 "$C1_B") | $(cell "$OUT/p1_lv" host_fresh 0 "$L1_B") | |
| 1 | idle: one VM, fresh | $(cell "$OUT/p1_cvmm" vm_fresh 0 "$C1_B") | $(cell "$OUT/p1_lv" vm_fresh 0 "$L1_B") | |
| 1 | **${N_START} starting at once**: GET /v1/host vs GetVersion, fresh | $(cell "$OUT/p1_cvmm" host_fresh "$C1_B" "$C1_E") | $(cell "$OUT/p1_lv" host_fresh "$L1_B" "$L1_E") | p99 ≤ 20 ms: $(verdict "$(p99_of "$OUT/p1_cvmm" host_fresh "$C1_B" "$C1_E")" 20) |
| 1 | ${N_START} starting: same, kept connection | $(cell "$OUT/p1_cvmm" host_ka "$C1_B" "$C1_E") | $(cell "$OUT/p1_lv" host_ka "$L1_B" "$L1_E") | p99 ≤ 20 ms: $(verdict "$(p99_of "$OUT/p1_cvmm" host_ka "$C1_B" "$C1_E")" 20) |
| 1 | ${N_START} starting: GET /v1/vms/{id} vs dominfo, fresh | $(cell "$OUT/p1_cvmm" vm_fresh "$C1_B" "$C1_E") | $(cell "$OUT/p1_lv" vm_fresh "$L1_B" "$L1_E") | p99 ≤ 20 ms: $(verdict "$(p99_of "$OUT/p1_cvmm" vm_fresh "$C1_B" "$C1_E")" 20) |
| 1 | ${N_START} starting: same, kept connection | $(cell "$OUT/p1_cvmm" vm_ka "$C1_B" "$C1_E") | $(cell "$OUT/p1_lv" vm_ka "$L1_B" "$L1_E") | p99 ≤ 20 ms: $(verdict "$(p99_of "$OUT/p1_cvmm" vm_ka "$C1_B" "$C1_E")" 20) |
| 1 | the window: burst → all ${N_START} running | ${C1_WIN} s (the ${N_START} \`cvmm start\` CLIs returned after ${C1_CLI} ms); at the end: ${C1_FINAL:-?} | ${L1_WIN} s (until every \`virsh create\` returned); ${L1_FINAL} | |
| 2 | **${N_LOOPERS} clients listing ${N_DEFINED}**: host, fresh | $(cell "$OUT/p2_cvmm" host_fresh "$p2_cvmm_B" "$p2_cvmm_E") | $(cell "$OUT/p2_lv" host_fresh "$p2_lv_B" "$p2_lv_E") | p99 ≤ 20 ms: $(verdict "$(p99_of "$OUT/p2_cvmm" host_fresh "$p2_cvmm_B" "$p2_cvmm_E")" 20) |
| 2 | listing: host, kept connection | $(cell "$OUT/p2_cvmm" host_ka "$p2_cvmm_B" "$p2_cvmm_E") | $(cell "$OUT/p2_lv" host_ka "$p2_lv_B" "$p2_lv_E") | p99 ≤ 20 ms: $(verdict "$(p99_of "$OUT/p2_cvmm" host_ka "$p2_cvmm_B" "$p2_cvmm_E")" 20) |
| 2 | listing: one VM, fresh | $(cell "$OUT/p2_cvmm" vm_fresh "$p2_cvmm_B" "$p2_cvmm_E") | $(cell "$OUT/p2_lv" vm_fresh "$p2_lv_B" "$p2_lv_E") | p99 ≤ 20 ms: $(verdict "$(p99_of "$OUT/p2_cvmm" vm_fresh "$p2_cvmm_B" "$p2_cvmm_E")" 20) |
| 2 | listing: one VM, kept connection | $(cell "$OUT/p2_cvmm" vm_ka "$p2_cvmm_B" "$p2_cvmm_E") | $(cell "$OUT/p2_lv" vm_ka "$p2_lv_B" "$p2_lv_E") | p99 ≤ 20 ms: $(verdict "$(p99_of "$OUT/p2_cvmm" vm_ka "$p2_cvmm_B" "$p2_cvmm_E")" 20) |
| 2 | the list clients' throughput (${LOOP_S} s) | GET /v1/vms (${C2_BYTES} B, ${C2_COUNT} VMs): ${p2_cvmm_RATE} | virConnectListAllDomains (${L2_COUNT} domains): ${p2_lv_RATE} | |
| 3 | **kill -9, exec → first answer**, ${N_ADOPT} running | $(adopt_cell "$OUT/adopt_cvmm" first_ms) (GET /v1/host) | $(adopt_cell "$OUT/adopt_lv" first_ms) (ListAllDomains) | ≤ 100 ms: $(verdict "$(adopt_med "$OUT/adopt_cvmm" first_ms)" 100) |
| 3 | exec → all ${N_ADOPT} seen running again | $(adopt_cell "$OUT/adopt_cvmm" all_ms) (state running with a pid) | $(adopt_cell "$OUT/adopt_lv" all_ms) (listed active) | ≤ 100 ms: $(verdict "$(adopt_med "$OUT/adopt_cvmm" all_ms)" 100) |
| 3 | running at the first answer | $(jq -r '.running_at_first_answer // "?"' "$OUT/adopt_cvmm" 2>/dev/null | tr '\n' ' ')of ${N_ADOPT}; at the end: ${C3_FINAL:-?} | $(jq -r '.running_at_first_answer // "?"' "$OUT/adopt_lv" 2>/dev/null | tr '\n' ' ')of ${N_ADOPT}; at the end: ${L3_FINAL} | |
| 4 | **start → QEMU's execve** | POST /v1/vms/{id}/start: $(exec_cell "$OUT/exec_cvmm") | virDomainCreate (\`virsh start\`): $(exec_cell "$OUT/exec_lv_start"); virDomainCreateXML (\`virsh create\`): $(exec_cell "$OUT/exec_lv_create") | ≤ 5 ms: $(verdict "$(exec_med "$OUT/exec_cvmm")" 5) |
| 4 | same, from the wrapper's stamp minus its own exec (${CALIB_MS} ms, ${STAMP_STATIC}) | $(corr_cell "$OUT/exec_cvmm") | start: $(corr_cell "$OUT/exec_lv_start"); create: $(corr_cell "$OUT/exec_lv_create") | |
| 4 | start → the API's answer | 202 after $(vcell "$OUT/exec_cvmm" 3) | virDomainCreate returned (QEMU running) after $(vcell "$OUT/exec_lv_start" 3); CreateXML: $(vcell "$OUT/exec_lv_create" 3) | |
| 4 | start → reported running (cvmm: polled GET after the exec) | $(vcell "$OUT/exec_cvmm" 5) | (= the call's return) | |
| 4 | traced start (strace -f), request → exec | $(sj "$OUT/strace_cvmm.json" '"\(.exec_ms) ms traced; \(.before_exec_total) syscalls, \(.before_exec.close // 0) close, \(.before_exec.fsync // 0) fsync + \(.before_exec.fdatasync // 0) fdatasync (\(.fsyncs_before_exec | join(" ")))"') | $(sj "$OUT/strace_lv.json" '"\(.exec_ms) ms traced; \(.before_exec_total) syscalls, \(.before_exec.close // 0) close, \(.before_exec.fsync // 0) fsync + \(.before_exec.fdatasync // 0) fdatasync"') | |
| 4 | traced start, request → running (the daemon's threads and helpers, not QEMU) | $(sj "$OUT/strace_cvmm.json" '"\(.whole_start_total) syscalls, \(.whole_start.fsync // 0) fsync, \(.whole_start.fdatasync // 0) fdatasync, \(.whole_start.close // 0) close"') | $(sj "$OUT/strace_lv.json" '"\(.whole_start_total) syscalls, \(.whole_start.fsync // 0) fsync, \(.whole_start.fdatasync // 0) fdatasync, \(.whole_start.close // 0) close"') | |

Part 4 clock: $PERF_NOTE. The wrapper's own exec cost (static exec of itself to its main, median of 30): ${CALIB_MS} ms.
Syscalls before the exec, most frequent first — cvmm: $(sj "$OUT/strace_cvmm.json" '.before_exec | to_entries | .[:12] | map("\(.key) \(.value)") | join(", ")');
libvirt: $(sj "$OUT/strace_lv.json" '.before_exec | to_entries | .[:12] | map("\(.key) \(.value)") | join(", ")').

Raw part 4 runs (ms, perf execve entry): cvmm $(awk '{ printf "%s ", $1 }' "$OUT/exec_cvmm.perf" 2>/dev/null); virsh start $(awk '{ printf "%s ", $1 }' "$OUT/exec_lv_start.perf" 2>/dev/null); virsh create $(awk '{ printf "%s ", $1 }' "$OUT/exec_lv_create.perf" 2>/dev/null).

### How it ran

\`\`\`sh
# cvmm: $CVMMD -c <config>, config shaped like conf/cvmm.conf (net-user, accel tcg, no port mapping,
#   workers 4), state in a temp dir; part 4 and 3 with plugin.backend-qemu.qemu = <the stamp wrapper>
# 1: ${N_START}× in parallel:  cvmm --socket <sock> start burst-NN   (tiny, vcpu 1, memory_mb 256)
# 2: ${N_LOOPERS}× nice -n 19 api_latency.py loop --kind cvmm (GET /v1/vms on a kept connection) over ${N_DEFINED} VMs
# 3: kill -KILL <cvmmd>; api_latency.py restart --kind cvmm -- cvmmd -c <config>   (×${ADOPT_RUNS})
# 4: api_latency.py execstart --kind cvmm (POST /v1/vms/<id>/start, fresh connection; then kill)
# libvirt: setpriv --reuid=$BENCH_USER ... env -i HOME=.. XDG_RUNTIME_DIR=.. XDG_CONFIG_HOME=.. XDG_CACHE_HOME=.. libvirtd
#   URI $LVURI
# 1: ${N_START}× in parallel:  virsh create burst-NN.xml   (same kernel/initrd, own qcow2 overlay, 256 MiB, 1 vCPU)
# 2: ${N_LOOPERS}× nice -n 19 api_latency.py loop --kind libvirt (virConnectListAllDomains) over ${L2_COUNT} defined domains
# 3: kill -KILL <libvirtd>; api_latency.py restart --kind libvirt -- libvirtd   (×${ADOPT_RUNS}; ${N_ADOPT} transient domains)
# 4: api_latency.py execstart --kind libvirt --mode start|createxml  (<emulator> = the stamp wrapper)
# probes in every part: api_latency.py probe --kind cvmm|libvirt (round robin: host fresh, VM fresh, host kept, VM kept)
\`\`\`

Domain XML of part 1:
\`\`\`xml
$(cat "$LV/xml/burst-01.xml" 2>/dev/null | grep -v '^ *$')
\`\`\`
EOF
exit 0
