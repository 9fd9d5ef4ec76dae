#!/usr/bin/env bash
# The main job on a fresh machine: installs dependencies, builds, builds the
# tiny guest, starts cvmmd on conf/cvmm.conf and boots VM 'demo' from image
# 'tiny'; prints its console line, `cvmm list`, and what its web server says
# on the mapped port. The daemon and the VM keep running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
conf=conf/cvmm.conf
sock=/run/cvmm/cvmm.sock
log=/var/log/cvmmd-demo.log

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCVMM_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)" --target runtime
scripts/build-test-guest.sh
build/core/cvmmd --check-config "$conf"

cvmm() { build/core/cvmm --socket "$sock" "$@"; }
if ! cvmm host >/dev/null 2>&1; then
	setsid build/core/cvmmd -c "$conf" >>"$log" 2>&1 < /dev/null &
	for _ in $(seq 100); do cvmm host >/dev/null 2>&1 && break; sleep 0.2; done
	cvmm host >/dev/null || { echo "cvmmd did not start; see $log" >&2; tail -5 "$log" >&2; exit 1; }
fi
echo "cvmmd is up ($(cvmm --json host | grep -o '"accelerator": *"[^"]*"'))"

if cvmm info demo >/dev/null 2>&1; then
	cvmm start demo >/dev/null 2>&1 || true
else
	cvmm create demo --image tiny --port 127.0.0.1:18080:8080
fi
echo "waiting for the guest's console line ..."
for _ in $(seq 240); do
	cvmm logs demo -n 200 | grep -q 'cvmm-tiny: ready' && break
	sleep 0.5
done
cvmm logs demo -n 200 | grep 'cvmm-tiny:' || { echo "no console line; see cvmm logs demo" >&2; exit 1; }
echo
cvmm list
echo
echo "http://127.0.0.1:18080/ says: $(curl -s --max-time 5 http://127.0.0.1:18080/ || echo '(no answer)')"
cat <<MSG

The daemon keeps running (log: $log). Try:
  build/core/cvmm --socket $sock logs -f demo
  build/core/cvmm --socket $sock stop demo
  build/core/cvmm --socket $sock remove demo
MSG
