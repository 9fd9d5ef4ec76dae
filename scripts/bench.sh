#!/bin/bash
# bench.sh — cvmm vs libvirt, side by side, in one run.  A benchmark, not a
# test: it prints figures (a markdown table plus the exact commands used) and
# exits 0 whatever the timings are; it exits non-zero only when it cannot run
# (not root, missing build, a daemon that does not come up).
#
#   scripts/bench.sh
#
# Environment knobs (defaults in brackets):
#   N_VMS [1000]      defined VMs / domains for the list and memory figures
#   N_LIST [50]       timed invocations of every list and info command
#   N_CLI [20]        of the N_VMS cvmm VMs, how many are defined one CLI call
#                     each (`cvmm create --no-start`, latency); the rest go
#                     through one keep-alive curl session (throughput)
#   N_BOOT [9]        boot-to-console runs for cvmm and for direct QEMU each
#                     (alternating); 0 skips the boot part (no guest boots)
#   IMAGE_DIR [/var/lib/cvmm/images]   where image "tiny" lives
#   BUILD [<repo>/build]               cvmmd, cvmm, plugins/*.so
#   BENCH_USER [cvmm-bench]  unprivileged user the libvirt session daemon runs
#                     as; created for the run and deleted afterwards (an
#                     existing user is used as is and kept, unless it is a
#                     leftover of an interrupted run of this script)
#   KEEP [0]          1: keep the temp dir (logs, configs, argv) for reading
#   BASE_CVMM []      another cvmm binary (e.g. an older build) to time in the
#                     same rounds as `cvmm info` and `cvmm list`: before/after
#
# What it measures
#  1. List: its own cvmmd (temp config shaped like conf/cvmm.conf: unix socket
#     and run/data dirs in a temp dir, plugins backend-qemu + net-user from the
#     build tree, accel tcg, large limits; cvmmd, cvmm and the plugins are
#     copied into the temp dir first, so a rebuild of the tree during the run
#     cannot change what is measured) with N_VMS VMs created with
#     "start": false, against its own libvirtd in session mode (qemu:///session)
#     running as BENCH_USER with HOME and XDG_{RUNTIME,CONFIG,CACHE}_HOME under
#     the temp dir, so it uses neither /etc/libvirt nor /run/libvirt nor any
#     running service, with N_VMS domains defined through one `virsh` stdin
#     session.  Times `cvmm list`, `cvmm --json list` (and the raw
#     `GET /v1/vms` through curl) vs `virsh list --all` (and `--name`), each a
#     fresh process, N_LIST times in alternating rounds, timed by
#     scripts/bench/spawn_time.c (fork..wait4): median / min / p90, with each
#     process's CPU time and page faults.  Also `cvmm info` vs `virsh dominfo`
#     and against a C program that only starts and exits, `cvmm --version`.
#     Also the daemon's own share: GET /v1/vms repeated on one keep-alive
#     connection, and the daemon's CPU time per GET.
#  2. Memory: VmRSS and Pss (/proc/PID/smaps_rollup) of both daemons, empty,
#     with N_VMS defined, and after the list runs (the figure compared).
#  3. Boot to console line: `cvmm start` (clock starts before the CLI is
#     executed) until "cvmm-tiny: ready" shows up in the VM's console log,
#     against the very same QEMU argv (read from /proc/<pid>/cmdline of the
#     QEMU cvmmd started; its per-VM paths pointed to a fresh dir) executed
#     directly from this shell, clock from fork/exec to the same line.
#     libvirtd is stopped before this part so it does not add noise.  On a
#     shared 2-core host the wall time is dominated by CPU contention, so it
#     also records each QEMU's own CPU time and its threads' run-queue wait
#     when the line appears (same CPU time = the launcher costs nothing).
#
# Everything it starts (cvmmd, libvirtd, QEMUs, temp dir, bench user) is
# removed on exit, including on Ctrl-C.
set -u -o pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N_VMS=${N_VMS:-1000}
N_LIST=${N_LIST:-50}
N_CLI=${N_CLI:-20}
N_BOOT=${N_BOOT:-9}
IMAGE_DIR=${IMAGE_DIR:-/var/lib/cvmm/images}
BUILD=${BUILD:-$ROOT/build}
BENCH_USER=${BENCH_USER:-cvmm-bench}
KEEP=${KEEP:-0}
USER_MARK="cvmm bench (temporary)"
READY='cvmm-tiny: ready'
QEMU_BIN=qemu-system-x86_64

((N_CLI > N_VMS)) && N_CLI=$N_VMS

BENCH_NAME=bench
# say, die, alive, kill_wait, pids_using_w, the bench user, as_bench, libvirtd
. "$ROOT/scripts/bench/common.sh"

[ "$(id -u)" -eq 0 ] || die "run as root (it creates an unprivileged user for libvirt)"

# ---- prerequisites ------------------------------------------------------------

need_deps=0
for c in curl jq perl virsh libvirtd "$QEMU_BIN" qemu-img setpriv useradd; do
	command -v "$c" >/dev/null 2>&1 || need_deps=1
done
if ((need_deps)); then
	say "installing missing packages (scripts/install-deps.sh)"
	"$ROOT/scripts/install-deps.sh" >&2 || die "install-deps.sh failed"
fi
if [ ! -x "$BUILD/core/cvmmd" ] || [ ! -x "$BUILD/core/cvmm" ] ||
	[ ! -f "$BUILD/plugins/backend-qemu.so" ] || [ ! -f "$BUILD/plugins/net-user.so" ]; then
	say "building into $BUILD"
	cmake -S "$ROOT" -B "$BUILD" >&2 && cmake --build "$BUILD" -j2 >&2 || die "build failed"
fi
if [ ! -f "$IMAGE_DIR/tiny/metadata.json" ]; then
	say "building the tiny test guest into $IMAGE_DIR"
	"$ROOT/scripts/build-test-guest.sh" "$IMAGE_DIR" >&2 || die "build-test-guest.sh failed"
fi
KERNEL=$IMAGE_DIR/tiny/vmlinuz
INITRD=$IMAGE_DIR/tiny/initrd.img

# ---- state and cleanup ----------------------------------------------------------

W=$(mktemp -d /tmp/cvmm-bench.XXXXXX) || die "mktemp failed"
chmod 755 "$W"
CV=$W/cvmm
LV=$W/libvirt
DQ=$W/direct
mkdir -p "$CV/run" "$CV/data" "$DQ"
SOCK=$CV/cvmm.sock
CVMMD=$W/bin/cvmmd
CVMM=$W/bin/cvmm
CVMMD_PID=
LIBVIRTD_PID=
DIRECT_PID=
USER_CREATED=0
BENCH_UID=
CLEANED=0

cleanup() {
	((CLEANED)) && return
	CLEANED=1
	trap '' INT TERM
	say "cleaning up"
	kill_wait "$DIRECT_PID" 5
	if [ -n "$CVMMD_PID" ] && kill -0 "$CVMMD_PID" 2>/dev/null; then
		# stop what is running, then the daemon (its VMs would outlive it)
		"$CVMM" --socket "$SOCK" kill boot-vm >/dev/null 2>&1
		kill_wait "$CVMMD_PID" 10
	fi
	kill_wait "$LIBVIRTD_PID" 10
	local p
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
mkdir -p "$W/bin" "$W/plugins"
cp "$BUILD/core/cvmmd" "$BUILD/core/cvmm" "$W/bin/" &&
	{ [ ! -x "$BUILD/core/cvmm-full" ] || cp "$BUILD/core/cvmm-full" "$W/bin/"; } &&
	{ [ -z "${BASE_CVMM:-}" ] || cp "$BASE_CVMM" "$W/bin/cvmm-base"; } &&
	cp "$BUILD/plugins/backend-qemu.so" "$BUILD/plugins/net-user.so" "$W/plugins/" ||
	die "cannot copy the build from $BUILD"

# ---- measurement helpers ---------------------------------------------------------

SAMPLES=$W/samples
mkdir -p "$SAMPLES"

# stats NAME -> "median min p90 max n" (ms)
stats() {
	sort -g "$SAMPLES/$1" | awk '{v[NR] = $1}
		END {
			if (NR == 0) { print "nan nan nan nan 0"; exit }
			med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			k = int(NR * 0.9); if (k < NR * 0.9) k++; if (k < 1) k = 1
			printf "%.1f %.1f %.1f %.1f %d\n", med, v[1], v[k], v[NR], NR
		}'
}
med() { stats "$1" | cut -d' ' -f1; }
fmt_stats() { # NAME -> "median X ms (min Y, p90 Z)"
	local s
	read -r m mi p ma n <<<"$(stats "$1")"
	printf '%s ms (min %s, p90 %s; n=%s)' "$m" "$mi" "$p" "$n"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%.1f", b / a; else print "n/a" }'; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# wait_line FILE OFFSET TIMEOUT_S: waits until READY appears in FILE after
# byte OFFSET (the file may not exist yet; if it shrinks, rescans from 0);
# prints the epoch time it was seen.  Polls every 2 ms.
wait_line() {
	perl -MTime::HiRes=time,usleep -e '
		my ($f, $off, $to, $pat) = @ARGV;
		my $end = time + $to; my $buf = "";
		while (time < $end) {
			if (open(my $fh, "<", $f)) {
				my $size = -s $fh;
				if ($size < $off) { $off = 0; $buf = ""; }
				if ($size > $off) {
					seek($fh, $off, 0); my $n = read($fh, my $d, $size - $off);
					$off += $n; $buf .= $d;
					if (index($buf, $pat) >= 0) { printf "%.6f\n", time; exit 0; }
					$buf = substr($buf, -4096) if length($buf) > 8192;
				}
				close($fh);
			}
			usleep(2000);
		}
		exit 1;' "$1" "$2" "$3" "$READY"
}

# check_cvmmd PHASE: dies (with the end of its log) if cvmmd is gone
check_cvmmd() {
	kill -0 "$CVMMD_PID" 2>/dev/null && [ -S "$SOCK" ] && return 0
	say "cvmmd (pid $CVMMD_PID) is gone or lost its socket during: $1; end of its log:"
	tail -15 "$CV/cvmmd.log" >&2
	die "cvmmd gone"
}

fsize() { stat -c %s "$1" 2>/dev/null || echo 0; }

# ---- environment --------------------------------------------------------------------

QEMU_VER=$("$QEMU_BIN" --version | head -1)
LV_VER=$(libvirtd --version 2>/dev/null | head -1)
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
say "temp dir $W"

# ---- cvmmd ---------------------------------------------------------------------------

CONF=$CV/cvmm.conf
cat >"$CONF" <<EOF
# cvmm bench configuration (shape of conf/cvmm.conf)
address = "unix:$SOCK";
run_path = "$CV/run";
data_dir = "$CV/data";
plugin_dir = "$W/plugins";   # copy of $BUILD/plugins
log_level = "info";
node_name = "bench";
workers = 4;
serial_log_max = 1048576;

image = {
  path = "$IMAGE_DIR";
};

cvm = {
  backend = "qemu";
  max_allocable_vcpu = 2000;
  max_allocable_memory_in_mb = 1000000;
  cid_start = 1000;
  cid_pool_size = 2000;

  networking = {
    mode = "user";
    net = "10.0.2.0/24";
    dhcp_start = "10.0.2.10";
    restrict = false;
  };

  port_mapping = {
    enabled = true;
    address = "127.0.0.1";
    range = (
      { protocol = "tcp"; from = 1024; to = 65535; },
      { protocol = "udp"; from = 1024; to = 65535; }
    );
  };

  auto_restart = {
    enabled = true;
    interval = 20;
    max_retries = 5;
    initial_backoff = 1.0;
    max_backoff = 60.0;
    reset_window = 300.0;
  };
};

auth = {
  enabled = false;
};

plugins = [ "backend-qemu", "net-user" ];

plugin = {
  backend-qemu = {
    accel = "tcg";
  };
};
EOF
"$CVMMD" -c "$CONF" --check-config >"$CV/check-config.log" 2>&1 ||
	die "cvmmd --check-config rejected $CONF: $(cat "$CV/check-config.log")"

say "starting cvmmd"
T0=$EPOCHREALTIME
"$CVMMD" -c "$CONF" >"$CV/cvmmd.log" 2>&1 &
CVMMD_PID=$!
for ((i = 0; i < 200; i++)); do
	"$CVMM" --socket "$SOCK" host >/dev/null 2>&1 && break
	kill -0 "$CVMMD_PID" 2>/dev/null || die "cvmmd exited: $(tail -5 "$CV/cvmmd.log")"
	sleep 0.05
done
"$CVMM" --socket "$SOCK" host >/dev/null 2>&1 || die "cvmmd does not answer on $SOCK"
CVMMD_UP_MS=$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.0f", (b - a) * 1000}')
CVMM_ACCEL=$("$CVMM" --socket "$SOCK" --json host 2>/dev/null | jq -r '.accelerator // .accel // empty' 2>/dev/null)
sleep 0.5
CV_RSS0=$(rss_kb "$CVMMD_PID")
CV_PSS0=$(pss_kb "$CVMMD_PID")

# ---- libvirtd (session, unprivileged, everything under $LV) -----------------------

bench_user_setup
VIRSH=(as_bench virsh -c qemu:///session)

say "starting libvirtd (session mode as $BENCH_USER)"
T0=$EPOCHREALTIME
libvirtd_session_start "$LV/libvirtd.log"
LV_UP_MS=$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.0f", (b - a) * 1000}')
sleep 0.5
LV_RSS0=$(rss_kb "$LIBVIRTD_PID")
LV_PSS0=$(pss_kb "$LIBVIRTD_PID")

# ---- 1a. define -------------------------------------------------------------------------

vmname() { printf 'bench-%04d' "$1"; }

say "cvmm: defining $N_VMS VMs ($N_CLI through the CLI, the rest through one curl session)"
: >"$SAMPLES/cvmm_create_cli"
for ((i = 1; i <= N_CLI; i++)); do
	t0=$EPOCHREALTIME
	"$CVMM" --socket "$SOCK" create "$(vmname "$i")" --image tiny --no-start >/dev/null 2>>"$CV/create.err" ||
		say "warning: cvmm create $(vmname "$i") failed: $(tail -1 "$CV/create.err")"
	t1=$EPOCHREALTIME
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", (b - a) * 1000}' >>"$SAMPLES/cvmm_create_cli"
done
CURLCFG=$CV/create.curl
: >"$CURLCFG"
for ((i = N_CLI + 1; i <= N_VMS; i++)); do
	((i > N_CLI + 1)) && echo next >>"$CURLCFG"
	printf 'unix-socket = "%s"\nurl = "http://cvmm/v1/vms"\nheader = "Content-Type: application/json"\ndata = "{\\"name\\": \\"%s\\", \\"image\\": \\"tiny\\", \\"start\\": false}"\noutput = "/dev/null"\nwrite-out = "%%{http_code} %%{time_total}\\n"\n' \
		"$SOCK" "$(vmname "$i")" >>"$CURLCFG"
done
N_CURL=$((N_VMS - N_CLI))
CV_DEF_S=0
if ((N_CURL > 0)); then
	t0=$EPOCHREALTIME
	curl -s -K "$CURLCFG" >"$CV/create.codes" 2>"$CV/create.curl.err"
	t1=$EPOCHREALTIME
	CV_DEF_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
	n201=$(grep -c '^201 ' "$CV/create.codes")
	((n201 == N_CURL)) || say "warning: $((N_CURL - n201)) of $N_CURL creates did not return 201: $(awk '$1 != 201 {print $1}' "$CV/create.codes" | sort | uniq -c | tr '\n' ' ')"
	awk '{printf "%.3f\n", $2 * 1000}' "$CV/create.codes" >"$SAMPLES/cvmm_create_keepalive"
fi
check_cvmmd "define"
CV_RSS_DEF=$(rss_kb "$CVMMD_PID")
CV_PSS_DEF=$(pss_kb "$CVMMD_PID")
CV_COUNT=$(curl -s --unix-socket "$SOCK" http://cvmm/v1/vms | jq '.vms | length')
CV_DEF_RATE=$(awk -v n="$N_CURL" -v s="$CV_DEF_S" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "n/a" }')

say "libvirt: capability probe, then defining $N_VMS domains through one virsh session"
t0=$EPOCHREALTIME
"${VIRSH[@]}" domcapabilities >/dev/null 2>&1
LV_PROBE_MS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.0f", (b - a) * 1000}')
VCMDS=$LV/define.virsh
: >"$VCMDS"
for ((i = 1; i <= N_VMS; i++)); do
	n=$(vmname "$i")
	cat >"$LV/xml/$n.xml" <<EOF
<domain type='qemu'>
  <name>$n</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$KERNEL</kernel>
    <initrd>$INITRD</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet cvmm.name=$n</cmdline>
  </os>
  <devices>
    <emulator>/usr/bin/$QEMU_BIN</emulator>
    <serial type='pty'/>
    <console type='pty'/>
  </devices>
</domain>
EOF
	echo "define $LV/xml/$n.xml" >>"$VCMDS"
done
chown -R "$BENCH_UID:$BENCH_GID" "$LV/xml" "$VCMDS"
t0=$EPOCHREALTIME
"${VIRSH[@]}" -q <"$VCMDS" >"$LV/define.out" 2>&1
t1=$EPOCHREALTIME
LV_DEF_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
LV_COUNT=$("${VIRSH[@]}" list --all --name 2>/dev/null | grep -c .)
LV_RSS_DEF=$(rss_kb "$LIBVIRTD_PID")
LV_PSS_DEF=$(pss_kb "$LIBVIRTD_PID")
LV_DEF_RATE=$(awk -v n="$N_VMS" -v s="$LV_DEF_S" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "n/a" }')
((LV_COUNT == N_VMS)) || say "warning: libvirt has $LV_COUNT domains, expected $N_VMS: $(grep -i error "$LV/define.out" | head -3)"
((CV_COUNT == N_VMS)) || say "warning: cvmm has $CV_COUNT VMs, expected $N_VMS"

# ---- 1b. list ----------------------------------------------------------------------------

say "timing list commands, $N_LIST runs each (alternating)"
CV_LIST_LINES=$("$CVMM" --socket "$SOCK" list 2>/dev/null | wc -l)
CV_JSON_BYTES=$("$CVMM" --socket "$SOCK" --json list 2>/dev/null | wc -c)
CV_API_BYTES=$(curl -s --unix-socket "$SOCK" http://cvmm/v1/vms | wc -c)
LV_LIST_LINES=$("${VIRSH[@]}" list --all 2>/dev/null | wc -l)
# The floor a CLI is measured against: a C program that only starts and exits
# (dynamically linked against libc, as most programs are; cc's defaults).
printf 'int main(void) { return 0; }\n' >"$W/null.c"
cc -O2 -o "$W/bin/null" "$W/null.c" || die "cannot compile $W/null.c"
# The clock: scripts/bench/spawn_time.c, which forks and execs each command
# and reads CLOCK_MONOTONIC around fork..wait4 (the process's CPU time and
# page faults from wait4's rusage). bash's own fork and clock would add a
# millisecond or more to every command alike, hiding small differences.
cc -O2 -o "$W/bin/spawn_time" "$ROOT/scripts/bench/spawn_time.c" || die "cannot compile spawn_time.c"
ONE_VM=$(vmname 1)
CV_INFO_OK=$("$CVMM" --socket "$SOCK" info "$ONE_VM" >/dev/null 2>&1 && echo yes || echo NO)
LV_INFO_OK=$("${VIRSH[@]}" dominfo "$ONE_VM" >/dev/null 2>&1 && echo yes || echo NO)
LIST_SAMPLES="null_c cvmm_version cvmm_info virsh_dominfo cvmm_list virsh_list cvmm_json_list virsh_list_name curl_get_vms true_floor"
printf '%s\n' "${LV_ENV[@]}" >"$W/virsh.env"
RAW=$W/raw
mkdir -p "$RAW"
V=("$BENCH_UID" "$BENCH_GID" "$W/virsh.env" virsh -c qemu:///session)
# one round = one run of each command, so background noise hits all alike;
# virsh runs as the bench user (the child switches user before its exec)
"$W/bin/spawn_time" "$N_LIST" "$RAW" \
	null_c - - - "$W/bin/null" ::: \
	cvmm_version - - - "$CVMM" --version ::: \
	cvmm_info - - - "$CVMM" --socket "$SOCK" info "$ONE_VM" ::: \
	virsh_dominfo "${V[@]}" dominfo "$ONE_VM" ::: \
	cvmm_list - - - "$CVMM" --socket "$SOCK" list ::: \
	virsh_list "${V[@]}" list --all ::: \
	cvmm_json_list - - - "$CVMM" --socket "$SOCK" --json list ::: \
	virsh_list_name "${V[@]}" list --all --name ::: \
	curl_get_vms - - - curl -s --unix-socket "$SOCK" http://cvmm/v1/vms ::: \
	true_floor - - - /bin/true \
	${BASE_CVMM:+::: base_info - - - "$W/bin/cvmm-base" --socket "$SOCK" info "$ONE_VM"} \
	${BASE_CVMM:+::: base_list - - - "$W/bin/cvmm-base" --socket "$SOCK" list} ||
	die "spawn_time failed"
[ -n "${BASE_CVMM:-}" ] && LIST_SAMPLES="$LIST_SAMPLES base_info base_list"
for s in $LIST_SAMPLES; do
	awk '{print $1}' "$RAW/$s" >"$SAMPLES/$s"
	awk '{print $2}' "$RAW/$s" >"$SAMPLES/${s}_cpu"
	awk '{print $4}' "$RAW/$s" >"$SAMPLES/${s}_flt"
	bad=$(awk '$3 != 0' "$RAW/$s" | wc -l)
	((bad)) && say "warning: $s: $bad of $N_LIST runs exited non-zero"
done
check_cvmmd "list"
# the daemon's own share: N_LIST GETs on one keep-alive connection, curl's
# time from request to last byte
: >"$CV/get.curl"
for ((r = 0; r < N_LIST; r++)); do
	((r)) && echo next >>"$CV/get.curl"
	printf 'unix-socket = "%s"\nurl = "http://cvmm/v1/vms"\noutput = "/dev/null"\nwrite-out = "%%{time_total}\\n"\n' \
		"$SOCK" >>"$CV/get.curl"
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CV_T0=$(ticks "$CVMMD_PID")
curl -s -K "$CV/get.curl" | awk '{printf "%.3f\n", $1 * 1000}' >"$SAMPLES/get_keepalive"
CV_T1=$(ticks "$CVMMD_PID")
CV_GET_CPU=$(awk -v a="$CV_T0" -v b="$CV_T1" -v n="$N_LIST" -v hz="$(getconf CLK_TCK)" \
	'BEGIN { printf "%.1f", (b - a) / hz * 1000 / n }')
# the daemon's share of a `cvmm info`: GET /v1/vms/ONE_VM on a fresh
# connection each time (accept, the connection's thread, the answer), curl's
# time from connected to last byte, and the daemon's CPU time per GET
CV_T0=$(ticks "$CVMMD_PID")
for ((r = 0; r < N_LIST; r++)); do
	curl -s -o /dev/null --unix-socket "$SOCK" -w '%{time_connect} %{time_total}\n' \
		"http://cvmm/v1/vms/$ONE_VM"
done | awk '{printf "%.3f\n", ($2 - $1) * 1000}' >"$SAMPLES/get_one_fresh"
CV_T1=$(ticks "$CVMMD_PID")
CV_GET1_CPU=$(awk -v a="$CV_T0" -v b="$CV_T1" -v n="$N_LIST" -v hz="$(getconf CLK_TCK)" \
	'BEGIN { printf "%.2f", (b - a) / hz * 1000 / n }')

# ---- 2. memory ---------------------------------------------------------------------------

sleep 1
CV_RSS1=$(rss_kb "$CVMMD_PID")
CV_PSS1=$(pss_kb "$CVMMD_PID")
LV_RSS1=$(rss_kb "$LIBVIRTD_PID")
LV_PSS1=$(pss_kb "$LIBVIRTD_PID")
CV_THREADS=$(awk '/^Threads:/ {print $2}' "/proc/$CVMMD_PID/status")
CV_FDS=$(ls "/proc/$CVMMD_PID/fd" | wc -l)
LV_THREADS=$(awk '/^Threads:/ {print $2}' "/proc/$LIBVIRTD_PID/status")

say "stopping libvirtd (not needed for the boot part)"
kill_wait "$LIBVIRTD_PID" 10
LIBVIRTD_PID=

# ---- 3. boot to console line ----------------------------------------------------------------

for f in boot_cvmm boot_direct boot_pairs boot_cvmm_cpu boot_cvmm_runq boot_direct_cpu \
	boot_direct_runq; do : >"$SAMPLES/$f"; done
touch "$W/argv.direct"
FOREIGN_BEFORE=- FOREIGN_AFTER=- CV_EVENTS=-
if ((N_BOOT > 0)); then
say "boot: warm-up start of boot-vm through cvmm"
"$CVMM" --socket "$SOCK" create boot-vm --image tiny --no-start >/dev/null 2>"$CV/boot-create.err" ||
	die "cvmm create boot-vm failed: $(cat "$CV/boot-create.err")"
BOOT_ID=$("$CVMM" --socket "$SOCK" --json info boot-vm | jq -r .id)
CONSOLE=$CV/data/vms/$BOOT_ID/console.log

vm_state() { "$CVMM" --socket "$SOCK" --json info boot-vm 2>/dev/null | jq -r .state; }
wait_state() { # STATE... : until the VM is in one of them (30 s)
	local i s
	for ((i = 0; i < 600; i++)); do
		s=$(vm_state)
		for w in "$@"; do [ "$s" = "$w" ] && return 0; done
		sleep 0.05
	done
	say "warning: boot-vm stayed in state '$s' (wanted $*)"
	return 1
}
cvmm_stop() {
	"$CVMM" --socket "$SOCK" stop boot-vm --force >/dev/null 2>>"$CV/boot-stop.err" ||
		say "warning: cvmm stop boot-vm failed: $(tail -1 "$CV/boot-stop.err")"
	wait_state stopped exited defined failed
}

# cvmm_boot_once -> prints the ms from "cvmm start" to READY, or nothing
# qemu_cpu PID NAME: appends the CPU time QEMU has used so far (all threads,
# ms) to $SAMPLES/NAME_cpu and the time its threads waited for a CPU on a run
# queue (sum of /proc/PID/task/*/schedstat field 2, ms) to $SAMPLES/NAME_runq:
# wall time = CPU + run-queue wait + sleeping, so these tell a slower
# launcher from a busier host.
qemu_cpu() {
	local pid=$1 name=$2
	[ -r "/proc/$pid/stat" ] || return 0
	awk -v hz="$(getconf CLK_TCK)" '{printf "%.0f\n", ($14 + $15) / hz * 1000}' "/proc/$pid/stat" \
		>>"$SAMPLES/${name}_cpu"
	cat /proc/"$pid"/task/*/schedstat 2>/dev/null | awk '{w += $2} END {printf "%.0f\n", w / 1e6}' \
		>>"$SAMPLES/${name}_runq"
}

cvmm_boot_once() {
	local off t0 t1
	off=$(fsize "$CONSOLE")
	t0=$EPOCHREALTIME
	"$CVMM" --socket "$SOCK" start boot-vm >/dev/null 2>>"$CV/boot-start.err" ||
		say "warning: cvmm start boot-vm failed: $(tail -1 "$CV/boot-start.err")"
	if t1=$(wait_line "$CONSOLE" "$off" 60); then
		qemu_cpu "$(cat "$CV/run/vms/$BOOT_ID/qemu.pid" 2>/dev/null)" boot_cvmm
		awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f\n", (b - a) * 1000}'
	else
		say "warning: cvmm boot: no '$READY' within 60 s (state $(vm_state))"
	fi
}

WARM_MS=$(cvmm_boot_once)
wait_state running
QPID=$("$CVMM" --socket "$SOCK" --json info boot-vm | jq -r '.pid // 0')
[ "$QPID" -gt 0 ] 2>/dev/null && [ -r "/proc/$QPID/cmdline" ] ||
	die "cannot find the QEMU of boot-vm (pid '$QPID')"
mapfile -d '' -t CV_ARGV <"/proc/$QPID/cmdline"
printf '%q ' "${CV_ARGV[@]}" >"$W/argv.cvmm"
QEMU_RSS=$(rss_kb "$QPID")
cvmm_stop

# The same argv with the VM's own paths (console log, disk under data_dir;
# QMP socket and pid file under run_path) pointed to a fresh directory.
VM_DATA=$CV/data/vms/$BOOT_ID
VM_RUN=$CV/run/vms/$BOOT_ID
mkdir -p "$DQ/data" "$DQ/run"
[ -f "$VM_DATA/disk.qcow2" ] && cp "$VM_DATA/disk.qcow2" "$DQ/data/disk.qcow2"
D_ARGV=()
for a in "${CV_ARGV[@]}"; do
	a=${a//"$VM_DATA"/"$DQ/data"}
	a=${a//"$VM_RUN"/"$DQ/run"}
	D_ARGV+=("$a")
done
printf '%q ' "${D_ARGV[@]}" >"$W/argv.direct"
D_CONSOLE=$DQ/data/console.log

direct_boot_once() {
	local t0 t1
	rm -f "$D_CONSOLE"
	rm -rf "$DQ/run"
	mkdir -p "$DQ/run"
	t0=$EPOCHREALTIME
	"${D_ARGV[@]}" </dev/null >/dev/null 2>>"$DQ/qemu.err" &
	DIRECT_PID=$!
	if t1=$(wait_line "$D_CONSOLE" 0 60); then
		qemu_cpu "$DIRECT_PID" boot_direct
		awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f\n", (b - a) * 1000}'
	else
		say "warning: direct QEMU: no '$READY' within 60 s: $(tail -2 "$DQ/qemu.err")"
	fi
	kill_wait "$DIRECT_PID" 10
	DIRECT_PID=
}

foreign_qemus() { # QEMUs on the host that this bench did not start
	local n=0 p
	for p in $(pgrep -x qemu-system-x86 2>/dev/null); do
		{ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -qF -- "$W/" || n=$((n + 1))
	done
	echo "$n"
}
FOREIGN_BEFORE=$(foreign_qemus)
say "boot: $N_BOOT runs each, alternating cvmm / direct QEMU ($FOREIGN_BEFORE other QEMUs running on the host)"
: >"$SAMPLES/boot_cvmm"
: >"$SAMPLES/boot_direct"
: >"$SAMPLES/boot_pairs"
: >"$SAMPLES/boot_cvmm_cpu"
: >"$SAMPLES/boot_cvmm_runq"
: >"$SAMPLES/boot_direct_cpu"
: >"$SAMPLES/boot_direct_runq"
for ((r = 0; r < N_BOOT; r++)); do
	if ((r % 2)); then order="direct cvmm"; else order="cvmm direct"; fi
	vc= vd=
	for o in $order; do
		if [ "$o" = cvmm ]; then
			v=$(cvmm_boot_once)
			vc=$v
			[ -n "$v" ] && echo "$v" >>"$SAMPLES/boot_cvmm"
			cvmm_stop
		else
			v=$(direct_boot_once)
			vd=$v
			[ -n "$v" ] && echo "$v" >>"$SAMPLES/boot_direct"
		fi
		say "  run $((r + 1)) $o: ${v:-?} ms"
	done
	[ -n "$vc" ] && [ -n "$vd" ] && echo "$vc $vd" >>"$SAMPLES/boot_pairs"
done
FOREIGN_AFTER=$(foreign_qemus)
fi
check_cvmmd "boot"
CV_EVENTS=$("$CVMM" --socket "$SOCK" --json info boot-vm 2>/dev/null | jq -c '{state, restarts, reason}')

# daemon health after everything
CV_RSS2=$(rss_kb "$CVMMD_PID")
CV_PSS2=$(pss_kb "$CVMMD_PID")
CV_FDS2=$(ls "/proc/$CVMMD_PID/fd" | wc -l)
CV_THREADS2=$(awk '/^Threads:/ {print $2}' "/proc/$CVMMD_PID/status")
CV_ERRS=$(grep -ciE 'error|warn' "$CV/cvmmd.log")

# ---- report ---------------------------------------------------------------------------------

m_cl=$(med cvmm_list)
m_cj=$(med cvmm_json_list)
m_cu=$(med curl_get_vms)
m_vl=$(med virsh_list)
m_vn=$(med virsh_list_name)
m_bc=$(med boot_cvmm)
m_bd=$(med boot_direct)
overhead_min=$(awk -v c="$(stats boot_cvmm | cut -d' ' -f2)" -v d="$(stats boot_direct | cut -d' ' -f2)" \
	'BEGIN { if (d > 0) printf "%+.2f %%", (c - d) / d * 100; else print "n/a" }')
overhead=$(awk -v c="$m_bc" -v d="$m_bd" 'BEGIN { if (d > 0) printf "%+.2f %%", (c - d) / d * 100; else print "n/a" }')
ovh_ms=$(awk -v c="$m_bc" -v d="$m_bd" 'BEGIN { printf "%+.1f ms", c - d }')
per_vm() { awk -v a="$1" -v b="$2" -v n="$N_VMS" 'BEGIN { printf "%.2f KiB", (b - a) / n }'; }
yesno() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
	ok = (op == ">=") ? (v >= t) : (v <= t); print ok ? "**met**" : "**NOT met**" }'; }
list_ratio=$(ratio "$m_cl" "$m_vl")
m_ci=$(med cvmm_info)
m_vi=$(med virsh_dominfo)
m_nc=$(med null_c)
info_ratio=$(ratio "$m_ci" "$m_vi")
info_over=$(awk -v a="$m_ci" -v b="$m_nc" 'BEGIN { printf "%.1f", a - b }')
# the same, paired: cvmm info minus the C program of the same round, so that
# a slow moment of the host hits both
paste "$SAMPLES/cvmm_info" "$SAMPLES/null_c" | awk '{printf "%.3f\n", $1 - $2}' >"$SAMPLES/info_minus_null"
paste "$SAMPLES/virsh_dominfo" "$SAMPLES/cvmm_info" | awk '$2 > 0 {printf "%.3f\n", $1 / $2}' >"$SAMPLES/dominfo_over_info"
paste "$SAMPLES/virsh_list" "$SAMPLES/cvmm_list" | awk '$2 > 0 {printf "%.3f\n", $1 / $2}' >"$SAMPLES/vlist_over_list"
m_pair_over=$(med info_minus_null)
m_pair_info=$(med dominfo_over_info)
m_pair_list=$(med vlist_over_list)
CVMM_LIBS=$(ldd "$CVMM" 2>/dev/null | grep -c '=>')
CVMM_STATIC=
file -L "$CVMM" 2>/dev/null | grep -q 'statically linked' && CVMM_STATIC=" (statically linked)"
json_ratio=$(ratio "$m_cj" "$m_vl")
rss_frac=$(awk -v c="$CV_RSS1" -v l="$LV_RSS1" 'BEGIN { printf "%.3f", c / l }')
pss_frac=$(awk -v c="$CV_PSS1" -v l="$LV_PSS1" 'BEGIN { printf "%.3f", c / l }')
awk '{printf "%.1f\n", $1 - $2}' "$SAMPLES/boot_pairs" >"$SAMPLES/boot_diff"
m_pd=$(med boot_diff)
pair_pct=$(awk -v p="$m_pd" -v d="$m_bd" 'BEGIN { if (d > 0) printf "%+.2f %%", p / d * 100; else print "n/a" }')
ovh_num=$(awk -v c="$m_bc" -v d="$m_bd" 'BEGIN { if (d > 0) printf "%.3f", (c - d) / d * 100; else print 999 }')

cat <<EOF

## cvmm vs libvirt — $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname)

Environment: $(nproc) CPUs ($CPU_MODEL), $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r),
$QEMU_VER, $LV_VER. Accelerator: TCG for both (cvmm \`accel = "tcg"\`, host reports
'${CVMM_ACCEL:-?}'; libvirt domains are \`type='qemu'\`); /dev/kvm $([ -e /dev/kvm ] && echo "present but not used (KVM guests hang on this machine kind)" || echo "absent").
Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); QEMUs not started by this bench running on the host
when the boot runs began / ended: ${FOREIGN_BEFORE} / ${FOREIGN_AFTER} (other work on the 2 cores adds noise, mostly to the boot rows).
Clock: scripts/bench/spawn_time.c, CLOCK_MONOTONIC from fork to wait4 of each command (a
fresh process each: exec, connect, request, print to /dev/null), ${N_LIST} rounds, each round
one run of every command in turn; virsh runs as the bench user (the forked child switches
user before its exec, so the switch is in virsh's time: a few microseconds).
Floors: fork+exec of /bin/true $(fmt_stats true_floor); \`cvmm --version\` (the CLI's process
start, no request): $(fmt_stats cvmm_version).

| # | measurement | cvmm | libvirt / direct QEMU | cvmm advantage | target |
|---|---|---|---|---|---|
| 1 | daemon start → answering | ${CVMMD_UP_MS} ms | ${LV_UP_MS} ms (probes QEMU capabilities at startup; \`virsh domcapabilities\` right after: ${LV_PROBE_MS} ms) | | |
| 1 | define ${N_VMS} (bulk, one connection) | ${N_CURL} in ${CV_DEF_S} s = **${CV_DEF_RATE}/s** (curl keep-alive, POST /v1/vms) | ${N_VMS} in ${LV_DEF_S} s = **${LV_DEF_RATE}/s** (one virsh stdin session) | $(ratio "$LV_DEF_RATE" "$CV_DEF_RATE")× | |
| 1 | define, per request on that connection | $(fmt_stats cvmm_create_keepalive) | | | |
| 1 | define, one CLI call each | \`cvmm create --no-start\` ×${N_CLI}: $(fmt_stats cvmm_create_cli) | | | |
| 1 | defined count / list lines | ${CV_COUNT} VMs / ${CV_LIST_LINES} lines | ${LV_COUNT} domains / ${LV_LIST_LINES} lines | | |
| 1 | **\`cvmm list\` vs \`virsh list --all\`** | $(fmt_stats cvmm_list) | $(fmt_stats virsh_list) | **${list_ratio}×** | ≥ 15× $(yesno "$list_ratio" ">=" 15) |
| 1 | **\`cvmm info\` vs \`virsh dominfo\`** (one VM of ${N_VMS}; answered: ${CV_INFO_OK} / ${LV_INFO_OK}) | $(fmt_stats cvmm_info) | $(fmt_stats virsh_dominfo) | **${info_ratio}×** | ≥ 10× $(yesno "$info_ratio" ">=" 10) |
| 1 | same two, paired within each round (median of the per-round ratios) | | | list **${m_pair_list}×**, info **${m_pair_info}×** | |
| 1 | **\`cvmm info\` − a C program that only starts and exits** | $(fmt_stats null_c) for the C program: cvmm info takes **${info_over} ms** more (medians; paired within rounds: ${m_pair_over} ms); the CLI maps ${CVMM_LIBS} shared object(s)${CVMM_STATIC} | | | ≤ 3 ms $(yesno "$info_over" "<=" 3) |
| 1 | CPU time of the process itself (wait4 rusage, median) | C program $(med null_c_cpu) ms, \`cvmm --version\` $(med cvmm_version_cpu) ms, \`cvmm info\` $(med cvmm_info_cpu) ms, \`cvmm list\` $(med cvmm_list_cpu) ms | \`virsh dominfo\` $(med virsh_dominfo_cpu) ms, \`virsh list --all\` $(med virsh_list_cpu) ms | | |
$(if [ -n "${BASE_CVMM:-}" ]; then
	echo "| 1 | BASE_CVMM ($BASE_CVMM) in the same rounds: info / list | $(fmt_stats base_info) / $(fmt_stats base_list); CPU $(med base_info_cpu) / $(med base_list_cpu) ms, faults $(med base_info_flt) / $(med base_list_flt) | | | |"
fi)
| 1 | minor page faults of the process (median) | C program $(med null_c_flt), \`cvmm --version\` $(med cvmm_version_flt), \`cvmm info\` $(med cvmm_info_flt), \`cvmm list\` $(med cvmm_list_flt) | \`virsh dominfo\` $(med virsh_dominfo_flt), \`virsh list --all\` $(med virsh_list_flt) | | |
| 1 | \`cvmm --json list\` (${CV_JSON_BYTES} B) vs \`virsh list --all\` | $(fmt_stats cvmm_json_list) | $(fmt_stats virsh_list) | ${json_ratio}× | ≥ 10× $(yesno "$json_ratio" ">=" 10) |
| 1 | daemon share: \`GET /v1/vms\` ×${N_LIST} on one keep-alive connection | $(fmt_stats get_keepalive); daemon CPU ${CV_GET_CPU} ms per GET | | | |
| 1 | daemon share of \`cvmm info\`: \`GET /v1/vms/${ONE_VM}\` ×${N_LIST}, a fresh connection each (curl, connected → last byte) | $(fmt_stats get_one_fresh); daemon CPU ${CV_GET1_CPU} ms per GET | | | |
| 1 | reference: raw \`GET /v1/vms\` via curl (${CV_API_BYTES} B) vs \`virsh list --all --name\` | $(fmt_stats curl_get_vms) | $(fmt_stats virsh_list_name) | $(ratio "$m_cu" "$m_vn")× | |
| 2 | daemon RSS, empty | $(mb "$CV_RSS0") | $(mb "$LV_RSS0") | | |
| 2 | daemon RSS / PSS, ${N_VMS} defined, before any list | $(mb "$CV_RSS_DEF") / $(mb "$CV_PSS_DEF") | $(mb "$LV_RSS_DEF") / $(mb "$LV_PSS_DEF") | | |
| 2 | **daemon RSS, ${N_VMS} defined, after the list runs** | $(mb "$CV_RSS1") | $(mb "$LV_RSS1") | cvmmd = ${rss_frac} of libvirtd | ≤ 0.25 $(yesno "$rss_frac" "<=" 0.25) |
| 2 | **daemon PSS, ${N_VMS} defined, after the list runs** (smaps_rollup) | $(mb "$CV_PSS1") (empty: $(mb "$CV_PSS0")) | $(mb "$LV_PSS1") (empty: $(mb "$LV_PSS0")) | cvmmd = ${pss_frac} of libvirtd | ≤ 0.25 $(yesno "$pss_frac" "<=" 0.25) |
| 2 | RSS per defined VM (slope 0 → ${N_VMS}, after the lists) | $(per_vm "$CV_RSS0" "$CV_RSS1") | $(per_vm "$LV_RSS0" "$LV_RSS1") | | |
| 2 | threads / open fds | ${CV_THREADS} / ${CV_FDS} | ${LV_THREADS} / – | | |
| 3 | **boot to \`$READY\`** (${N_BOOT} runs each, alternating) | $(fmt_stats boot_cvmm) | $(fmt_stats boot_direct) | overhead of medians **${overhead}** (${ovh_ms}); of minima ${overhead_min} | ≤ 3 % $(yesno "$ovh_num" "<=" 3) |
| 3 | same, paired: cvmm − direct within each round | median ${m_pd} ms = ${pair_pct} of the direct median (differences: $(tr '\n' ' ' <"$SAMPLES/boot_diff")ms) | | | |
| 3 | QEMU CPU time (all threads) when the line appeared | $(fmt_stats boot_cvmm_cpu) | $(fmt_stats boot_direct_cpu) | | |
| 3 | QEMU threads' run-queue wait (host contention) until then | $(fmt_stats boot_cvmm_runq) | $(fmt_stats boot_direct_runq) | | |
| 3 | first start (creates the VM's disk overlay), not in the row above | ${WARM_MS:-?} ms | | | |
| 3 | QEMU RSS of the running tiny guest | $(mb "${QEMU_RSS:-0}") | same argv | | |

After the boot runs: cvmmd RSS $(mb "$CV_RSS2"), PSS $(mb "$CV_PSS2"), ${CV_THREADS2} threads, ${CV_FDS2} fds;
boot-vm $CV_EVENTS; ${CV_ERRS} warning/error lines in the cvmmd log.

Raw samples (ms):
$(for s in cvmm_list cvmm_json_list curl_get_vms get_keepalive get_one_fresh virsh_list virsh_list_name cvmm_info virsh_dominfo null_c cvmm_version boot_cvmm boot_direct boot_cvmm_cpu boot_direct_cpu boot_cvmm_runq boot_direct_runq; do printf -- '- %s: %s\n' "$s" "$(tr '\n' ' ' <"$SAMPLES/$s")"; done)

### Commands used

\`\`\`sh
# cvmm (config: shape of conf/cvmm.conf, printed below)
$CVMMD -c $CONF &
$CVMM --socket $SOCK create bench-0001 --image tiny --no-start          # ×$N_CLI, timed each
curl -s -K $CURLCFG   # $N_CURL blocks, one connection, separated by "next":
#   unix-socket = "$SOCK"; url = "http://cvmm/v1/vms"; header = "Content-Type: application/json"
#   data = "{\"name\": \"bench-NNNN\", \"image\": \"tiny\", \"start\": false}"; next
$CVMM --socket $SOCK list
$CVMM --socket $SOCK --json list
$CVMM --socket $SOCK info $ONE_VM
$CVMM --version
$W/bin/null      # cc -O2 of "int main(void) { return 0; }"
# all of them, and virsh's below, timed by ${N_LIST} rounds of:
$W/bin/spawn_time $N_LIST $RAW  NAME UID GID ENVFILE CMD... ::: ...
curl -s --unix-socket $SOCK http://cvmm/v1/vms
curl -s -K $CV/get.curl    # ${N_LIST}× GET /v1/vms, one connection, -w %{time_total}
curl -s -o /dev/null --unix-socket $SOCK -w '%{time_connect} %{time_total}' http://cvmm/v1/vms/$ONE_VM   # ×${N_LIST}

# libvirt: session daemon as unprivileged $BENCH_USER, all state under $LV
# (HOME, XDG_RUNTIME_DIR, XDG_CONFIG_HOME, XDG_CACHE_HOME), nothing in /etc or /run
setpriv --reuid=$BENCH_USER --regid=$BENCH_USER --clear-groups env -i HOME=$LV/home \\
    XDG_RUNTIME_DIR=$LV/run XDG_CONFIG_HOME=$LV/config XDG_CACHE_HOME=$LV/cache libvirtd &
virsh -c qemu:///session domcapabilities      # timed apart (libvirtd probes QEMU at startup)
virsh -c qemu:///session -q < $VCMDS    # $N_VMS lines "define $LV/xml/bench-NNNN.xml"
virsh -c qemu:///session list --all
virsh -c qemu:///session list --all --name
virsh -c qemu:///session dominfo $ONE_VM
(each timed virsh: spawn_time's child drops to uid/gid of $BENCH_USER, no groups, env -i + the XDG vars, then execs virsh)

# memory
grep VmRSS /proc/<pid>/status; grep ^Pss: /proc/<pid>/smaps_rollup

# boot: clock starts, then
$CVMM --socket $SOCK start boot-vm
#   ... until "$READY" appears in $CV/data/vms/<id>/console.log after its old end;
$CVMM --socket $SOCK stop boot-vm --force     # between runs
# direct: the argv of boot-vm's QEMU from /proc/<pid>/cmdline, its per-VM paths
# ($CV/{data,run}/vms/<id>) replaced by $DQ/{data,run} (disk overlay copied), run as
$(cat "$W/argv.direct")&
#   ... until "$READY" appears in $DQ/data/console.log; then SIGTERM
\`\`\`

Domain XML (one per name):
\`\`\`xml
$(cat "$LV/xml/bench-0001.xml")
\`\`\`

cvmmd config:
\`\`\`
$(cat "$CONF")
\`\`\`
EOF
exit 0
