# shellcheck shell=bash
# common.sh — shell functions shared by the side-by-side benchmarks
# (scripts/bench.sh, scripts/bench/api_latency.sh).  Sourced, not executed.
#
# The libvirt side of every benchmark is a libvirtd in session mode
# (qemu:///session) run as an unprivileged temporary user, with HOME and
# XDG_{RUNTIME,CONFIG,CACHE}_HOME under the benchmark's temp dir, so that it
# uses neither /etc/libvirt nor /run/libvirt nor any running service.
#
# The caller sets, before calling the functions that use them:
#   BENCH_NAME   prefix of the progress lines ("bench", "api_latency")
#   W            the temp dir; every process whose command line mentions it
#                is the benchmark's own (pids_using_w)
#   BENCH_USER   the temporary user's name; USER_MARK its GECOS field
#   LV           the libvirt state dir (under W)
# and gets: USER_CREATED BENCH_UID BENCH_GID LV_ENV LIBVIRTD_PID.

say() { printf '%s: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

# pids of processes whose command line mentions our temp dir (our QEMUs)
pids_using_w() {
	local p
	for p in /proc/[0-9]*; do
		[ "${p#/proc/}" = "$$" ] && continue
		{ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$W/" && echo "${p#/proc/}"
	done
}

alive() { # PID: running (a zombie, i.e. exited but not reaped, is not)
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

kill_wait() { # PID [seconds]: TERM, wait up to seconds, then KILL; reaps it
	local pid=$1 t=${2:-10} i
	[ -n "$pid" ] || return 0
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < t * 20; i++)); do
			alive "$pid" || break
			sleep 0.05
		done
		alive "$pid" && kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null # our own child: reap it (no-op otherwise)
	return 0
}

# bench_user_setup: creates BENCH_USER (or adopts a leftover of an
# interrupted run, recognised by USER_MARK) and the session dirs under LV.
USER_CREATED=0
BENCH_UID=
BENCH_GID=
bench_user_setup() {
	if id "$BENCH_USER" >/dev/null 2>&1; then
		if [ "$(getent passwd "$BENCH_USER" | cut -d: -f5)" = "$USER_MARK" ]; then
			USER_CREATED=1 # a leftover of an interrupted run: ours to delete
		fi
	else
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
			--comment "$USER_MARK" --user-group "$BENCH_USER" || die "useradd $BENCH_USER failed"
		USER_CREATED=1
	fi
	BENCH_UID=$(id -u "$BENCH_USER")
	BENCH_GID=$(id -g "$BENCH_USER")
	mkdir -p "$LV/home" "$LV/run" "$LV/config" "$LV/cache" "$LV/xml"
	chmod 700 "$LV/run"
	chown -R "$BENCH_UID:$BENCH_GID" "$LV"
	# LIBVIRT_AUTOSTART=0: a client must never spawn a second daemon of its
	# own while ours is down (the restart measurement kills it on purpose)
	LV_ENV=(HOME="$LV/home" XDG_RUNTIME_DIR="$LV/run" XDG_CONFIG_HOME="$LV/config"
		XDG_CACHE_HOME="$LV/cache" PATH=/usr/sbin:/usr/bin:/sbin:/bin LIBVIRT_AUTOSTART=0)
}

# bench_user_cleanup: kills every process of the temporary user (libvirtd,
# virtlogd, their QEMUs) and deletes the user, if this run owns it
bench_user_cleanup() {
	local p
	if ((USER_CREATED)) && [ -n "$BENCH_UID" ]; then
		for p in /proc/[0-9]*; do
			[ "$(stat -c %u "$p" 2>/dev/null)" = "$BENCH_UID" ] && kill -KILL "${p#/proc/}" 2>/dev/null
		done
		sleep 0.2
		userdel "$BENCH_USER" >/dev/null 2>&1 || say "warning: userdel $BENCH_USER failed"
	fi
}

# as_bench CMD...: exec CMD as BENCH_USER with the session environment
# (setpriv execs, no extra process stays in between)
as_bench() {
	setpriv --reuid="$BENCH_UID" --regid="$BENCH_GID" --clear-groups \
		env -i "${LV_ENV[@]}" "$@"
}

# libvirtd_session_start LOG: starts libvirtd as BENCH_USER, waits until
# `virsh version` answers (10 s), sets LIBVIRTD_PID; dies if it does not come up
LIBVIRTD_PID=
libvirtd_session_start() {
	local log=$1 i
	# a simple command, not the function, so that $! is libvirtd itself
	setpriv --reuid="$BENCH_UID" --regid="$BENCH_GID" --clear-groups \
		env -i "${LV_ENV[@]}" libvirtd >"$log" 2>&1 &
	LIBVIRTD_PID=$!
	for ((i = 0; i < 200; i++)); do
		[ -S "$LV/run/libvirt/libvirt-sock" ] && as_bench virsh -c qemu:///session -q version >/dev/null 2>&1 && break
		kill -0 "$LIBVIRTD_PID" 2>/dev/null || die "libvirtd exited: $(tail -5 "$log")"
		sleep 0.05
	done
	as_bench virsh -c qemu:///session -q version >/dev/null 2>&1 || die "libvirtd does not answer"
	[ "$(cat "$LV/run/libvirt/libvirtd.pid" 2>/dev/null)" = "$LIBVIRTD_PID" ] ||
		die "libvirtd pid $LIBVIRTD_PID is not the one in $LV/run/libvirt/libvirtd.pid"
}
