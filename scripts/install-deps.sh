#!/bin/sh
# install-deps.sh — install every Debian 12 package cvmm needs (build, tests,
# test guest, Debian guest and cloud-init seeds, demo, sanitizer builds: libasan8/libubsan1/libtsan2 are gcc's
# runtimes, libtirpc3 is preloaded into an ASan cvmmd that loads libvirt,
# see tests/integration/harness.py; prometheus gives promtool and the server
# the metrics suite scrapes cvmmd with).  Fails when any of them cannot be
# installed.  Idempotent: when everything is already installed it does
# nothing (no apt-get update) and exits 0 quickly.
#
# Must run as root (or under sudo).  Service autostart is suppressed during the
# install with a temporary /usr/sbin/policy-rc.d so that packages shipping
# daemons (libvirt-daemon-system, ...) install cleanly in containers without
# systemd.
set -eu

PACKAGES="
build-essential cmake pkg-config
libev-dev libconfig-dev libjson-c-dev libmicrohttpd-dev libcunit1-dev
libcurl4-openssl-dev libgnutls28-dev openssl
qemu-system-x86 qemu-utils passt ovmf
busybox-static cpio gzip zstd xz-utils kmod
socat jq curl iproute2 procps psmisc python3 python3-libvirt strace
libvirt-daemon-system libvirt-clients libvirt-dev libxml2-utils
libnl-3-dev libnl-route-3-dev dnsmasq-base nftables
libtirpc3 libtsan2 libasan8 libubsan1
libpci-dev pci.ids python3-fusepy python3-jsonschema
clang libclang-rt-14-dev
lintian mandoc man-db systemd
libsecp256k1-dev libssl-dev python3-cryptography
mmdebstrap xorriso genisoimage grub-pc-bin grub-efi-amd64-bin grub-common mtools
dosfstools fdisk e2fsprogs openssh-client
prometheus
chromium
"

log() { printf 'install-deps: %s\n' "$*" >&2; }

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

missing=""
for p in $PACKAGES; do
    is_installed "$p" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    log "all packages already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo -E "$0" "$@"
    fi
    log "must run as root to install:$missing"
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
APT="apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"

# Keep maintainer scripts from starting services (no init system in containers).
POLICY=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$POLICY"
    chmod 0755 "$POLICY"
    own_policy=1
fi
cleanup() { [ "$own_policy" -eq 1 ] && rm -f "$POLICY"; return 0; }
trap cleanup EXIT INT TERM

log "updating package lists"
apt-get update -q

# Every package is needed (a test that cannot run fails CI): a name this
# distribution does not offer is an error, not something to skip.
to_install=""
unavailable=""
for p in $missing; do
    if apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [^(]'; then
        to_install="$to_install $p"
    else
        unavailable="$unavailable $p"
    fi
done
if [ -n "$unavailable" ]; then
    log "ERROR: not available from the configured apt sources:$unavailable"
    exit 1
fi

if [ -n "$to_install" ]; then
    log "installing:$to_install"
    # shellcheck disable=SC2086
    if ! $APT install --no-install-recommends $to_install; then
        # A maintainer script that wants a running init (libvirt, dnsmasq)
        # may fail in a container; finish configuration and retry once.
        log "install reported an error; finishing configuration and retrying"
        dpkg --configure -a || true
        # shellcheck disable=SC2086
        $APT install --no-install-recommends $to_install
    fi
fi

still=""
for p in $to_install; do
    is_installed "$p" || still="$still $p"
done
if [ -n "$still" ]; then
    log "ERROR: not installed:$still"
    exit 1
fi
log "done"
