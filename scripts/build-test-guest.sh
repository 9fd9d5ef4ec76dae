#!/bin/bash
# build-test-guest.sh — build the tiny cvmm test guest and install it as image
# "tiny".
#
#   scripts/build-test-guest.sh [-f|--force] [IMAGE_DIR]
#
# IMAGE_DIR defaults to $CVMM_IMAGE_PATH, else /var/lib/cvmm/images.  The image
# lands in IMAGE_DIR/tiny/:
#
#   vmlinuz        Debian's cloud kernel (linux-image-*-cloud-amd64)
#   initrd.img     gzip'd newc cpio: busybox-static + a handful of modules
#   hda.qcow2      blank 64 MiB qcow2 base disk
#   metadata.json  {"kernel", "initrd", "cmdline", "hda"}, relative paths
#
# Everything comes from Debian packages fetched with `apt-get download` into
# the cache dir ($CVMM_CACHE_DIR, else /var/cache/cvmm/guest) and unpacked
# with dpkg-deb -x; nothing is installed on the host.  Re-running downloads
# nothing and does nothing unless an input (a package or this script) is newer
# than the outputs; -f forces a rebuild.  Files are built in a temporary
# directory next to the image and moved into place with rename(2).
#
# Guest behaviour (serial console ttyS0; see the generated /init below):
#   cvmm-tiny: booting
#   cvmm-tiny: eth0 10.0.2.15/24         (or "cvmm-tiny: eth0 no-dhcp")
#   cvmm-tiny: disk vda 131072           (size in 512-byte sectors)
#   cvmm-tiny: numa node0 cpus 0-1       (one line per guest NUMA node)
#   cvmm-tiny: pci 0000:00:01.0 1b36:000c 060400 node -1   (one per PCI function)
#   cvmm-tiny: ready
# then a root shell on the console.  HTTP on TCP 8080 answers
# "hello from cvmm-tiny <name>"; the ACPI power button (QMP system_powerdown)
# powers the guest off.  Kernel command line options:
#   cvmm.name=NAME                       hostname (default cvmm-tiny)
#   cvmm.ip=IFACE:ADDR/PREFIX[:GATEWAY]  static address, no DHCP on IFACE
#                                        (may be given once per interface)
#   cvmm.dns=ADDR[,ADDR...]              resolvers for static setups
#   cvmm.agent_*=...                     options of cvmm-agent (agent/cvmm-agent.c)
# /init starts cvmm-agent (built here from agent/cvmm-agent.c, static, with
# musl-gcc if installed, else gcc and glibc) in the background once the
# modules are loaded; it talks to the daemon over the guest channel and logs
# to /run/cvmm-agent.log, never to the console.
set -euo pipefail

prog=build-test-guest
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=0
image_root=""
while [ $# -gt 0 ]; do
    case "$1" in
    -f|--force) force=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) [ -z "$image_root" ] || die "too many arguments"; image_root=$1 ;;
    esac
    shift
done
image_root=${image_root:-${CVMM_IMAGE_PATH:-/var/lib/cvmm/images}}
cache=${CVMM_CACHE_DIR:-/var/cache/cvmm/guest}
image=$image_root/tiny
self=$(readlink -f "$0")

KERNEL_META=linux-image-cloud-amd64
BUSYBOX_PKG=busybox-static
CMDLINE="console=ttyS0 panic=-1 quiet"
DISK_SIZE=64M
# Modules the guest loads, in this order (dependencies are added from
# modules.dep; anything built into the kernel is skipped).
MODULES="virtio_pci virtio_net virtio_blk virtio_console button evdev qemu_fw_cfg"

agent_src=$(dirname "$(readlink -f "$0")")/../agent/cvmm-agent.c
[ -f "$agent_src" ] || die "no $agent_src"
agent_cc=$(command -v musl-gcc || command -v "${CC:-gcc}" || true)
[ -n "$agent_cc" ] || die "no C compiler for cvmm-agent (musl-gcc or gcc)"
for t in apt-get apt-cache dpkg-deb cpio gzip qemu-img depmod modprobe sha256sum; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (run scripts/install-deps.sh)"
done
mkdir -p "$cache/debs" "$image_root"
# Keep apt's binary package cache with ours: Debian's container images disable
# it, which makes every apt-get/apt-cache call parse all lists (~1 s each).
# apt checks it against the lists and rebuilds it when they change.
APT_OPTS=(-o "Dir::Cache::pkgcache=$cache/apt-pkgcache.bin"
          -o "Dir::Cache::srcpkgcache=$cache/apt-srcpkgcache.bin")

# --- resolve and fetch the two packages --------------------------------------

apt_updated=0
apt_update() {
    [ "$apt_updated" -eq 0 ] || return 0
    log "apt-get update"
    apt-get update -q >&2 || log "warning: apt-get update failed"
    apt_updated=1
}

# Concrete kernel package behind the meta package, e.g.
# linux-image-6.1.0-56-cloud-amd64.
resolve_kernel_pkg() {
    apt-cache "${APT_OPTS[@]}" show --no-all-versions "$KERNEL_META" 2>/dev/null |
        sed -n 's/^Depends: //p' | tr ',|' '\n\n' |
        sed -n 's/^ *\(linux-image-[0-9][^ ]*-cloud-amd64\).*/\1/p' | head -n1
}

# newest cached .deb of package $1 (offline fallback)
cached_deb() {
    ls -t "$cache/debs/$1"_*.deb 2>/dev/null | head -n1 || true
}

# fetch PKG -> prints the path of its .deb in the cache
fetch() {
    local pkg=$1 _uri name size sum deb
    read -r _uri name size sum < <(printf '%s\n' "$uris" | grep "^'[^ ]*' ${pkg}_") || true
    if [ -z "${name:-}" ]; then
        deb=$(cached_deb "$pkg")
        [ -n "$deb" ] || return 1
        log "warning: apt does not know $pkg, using cached $(basename "$deb")"
        printf '%s\n' "$deb"
        return 0
    fi
    deb=$cache/debs/$name
    sum=${sum#SHA256:}
    if [ -f "$deb" ] && [ "$(stat -c %s "$deb")" = "$size" ]; then
        printf '%s\n' "$deb"
        return 0
    fi
    log "downloading $pkg ($name)"
    rm -f "$deb"
    (cd "$cache/debs" && apt-get "${APT_OPTS[@]}" download -q -o APT::Sandbox::User=root "$pkg" >&2) ||
        return 1
    [ -f "$deb" ] || return 1
    if [ -n "$sum" ] && [ "${#sum}" -eq 64 ]; then
        echo "$sum  $deb" | sha256sum -c --quiet - >&2 || { rm -f "$deb"; return 1; }
    fi
    touch "$deb"   # apt keeps the server's mtime; we compare against build time
    printf '%s\n' "$deb"
}

kpkg=$(resolve_kernel_pkg)
if [ -z "$kpkg" ]; then
    apt_update
    kpkg=$(resolve_kernel_pkg)
fi
if [ -z "$kpkg" ]; then
    kdeb=$(ls -t "$cache"/debs/linux-image-*-cloud-amd64_*.deb 2>/dev/null | head -n1 || true)
    [ -n "$kdeb" ] || die "cannot resolve $KERNEL_META and nothing cached"
    kpkg=$(basename "$kdeb"); kpkg=${kpkg%%_*}
    log "warning: cannot resolve $KERNEL_META, using cached $kpkg"
fi
# one apt call for both: "'URL' FILENAME SIZE SHA256:HEX" per package
print_uris() {
    uris=$(apt-get "${APT_OPTS[@]}" download --print-uris "$kpkg" "$BUSYBOX_PKG" 2>/dev/null) || uris=""
}
print_uris
kdeb=$(fetch "$kpkg") || { apt_update; print_uris; kdeb=$(fetch "$kpkg"); } ||
    die "cannot fetch $kpkg"
bdeb=$(fetch "$BUSYBOX_PKG") || { apt_update; print_uris; bdeb=$(fetch "$BUSYBOX_PKG"); } ||
    die "cannot fetch $BUSYBOX_PKG"

# --- up to date? -----------------------------------------------------------

stamp="$(basename "$kdeb") $(basename "$bdeb") $(sha256sum "$self" | cut -d' ' -f1) $(sha256sum "$agent_src" | cut -d' ' -f1)"
up_to_date() {
    local f
    [ "$(cat "$image/.build-inputs" 2>/dev/null)" = "$stamp" ] || return 1
    for f in vmlinuz initrd.img metadata.json; do
        [ -f "$image/$f" ] || return 1
        [ "$image/$f" -nt "$kdeb" ] && [ "$image/$f" -nt "$bdeb" ] &&
            [ "$image/$f" -nt "$self" ] || return 1
    done
    qemu-img info "$image/hda.qcow2" >/dev/null 2>&1 || return 1
}
if [ "$force" -eq 0 ] && up_to_date; then
    log "image tiny is up to date in $image"
    exit 0
fi

# --- build ---------------------------------------------------------------

tmp=$(mktemp -d "$image_root/.tiny.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
ext=$tmp/extract
root=$tmp/root
out=$tmp/out
mkdir -p "$ext/kernel" "$ext/busybox" "$root" "$out"

log "unpacking $(basename "$kdeb")"
dpkg-deb -x "$kdeb" "$ext/kernel"
dpkg-deb -x "$bdeb" "$ext/busybox"

kver=${kpkg#linux-image-}
[ -f "$ext/kernel/boot/vmlinuz-$kver" ] || die "no boot/vmlinuz-$kver in $kpkg"
kconfig=$ext/kernel/boot/config-$kver
if [ -d "$ext/kernel/lib/modules/$kver" ]; then
    kmods=$ext/kernel/lib/modules/$kver
    mbase=$ext/kernel
elif [ -d "$ext/kernel/usr/lib/modules/$kver" ]; then
    kmods=$ext/kernel/usr/lib/modules/$kver
    mbase=$ext/kernel/usr
else
    die "no modules for $kver in $kpkg"
fi
depmod -b "$mbase" "$kver"

# --- initramfs tree ----------------------------------------------------------

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,root,www,var/log}
mkdir -p "$root/lib/modules/$kver" "$root/etc/acpi/PWRF" "$root/usr/share/udhcpc"
chmod 1777 "$root/tmp"
ln -s ../run "$root/var/run"

bb=$ext/busybox/bin/busybox
[ -x "$bb" ] || die "no bin/busybox in $BUSYBOX_PKG"
cp "$bb" "$root/bin/busybox"
# one symlink per applet at its usual place (bin/ls, sbin/ip, usr/bin/...)
"$bb" --list-full | while read -r applet; do
    [ "$applet" = bin/busybox ] && continue
    [ -e "$root/$applet" ] || [ -L "$root/$applet" ] && continue
    case "$applet" in
    */*/*) ln -s ../../bin/busybox "$root/$applet" ;;
    */*)   ln -s ../bin/busybox "$root/$applet" ;;
    esac
done

# modules: resolve dependency order with modprobe against the unpacked tree
: > "$root/etc/modules.order"
for m in $MODULES; do
    sym=CONFIG_$(printf '%s' "$m" | tr '[:lower:]' '[:upper:]')
    modprobe -d "$mbase" -S "$kver" --show-depends "$m" 2>/dev/null |
        while read -r kind path _; do
            case "$kind" in
            insmod)
                rel=${path#"$kmods"/}
                grep -qxF "$rel" "$root/etc/modules.order" && continue
                mkdir -p "$root/lib/modules/$kver/$(dirname "$rel")"
                cp "$path" "$root/lib/modules/$kver/$rel"
                echo "$rel" >> "$root/etc/modules.order" ;;
            builtin) ;;
            esac
        done
    if ! grep -q "/$m\.ko" "$root/etc/modules.order"; then
        if grep -q "^$sym=y" "$kconfig" 2>/dev/null ||
            grep -q "/$m\.ko\$" "$kmods/modules.builtin"; then
            log "$m is built into $kver"
        else
            log "warning: module $m not found in $kver"
        fi
    fi
done
cp "$kmods"/modules.order "$kmods"/modules.builtin "$root/lib/modules/$kver/" 2>/dev/null || true
touch "$root/lib/modules/$kver/modules.builtin.modinfo"
depmod -b "$root" "$kver"   # modules.dep for busybox modprobe in the shell
echo "$kver" > "$root/etc/kernel-release"

log "building cvmm-agent with $agent_cc"
"$agent_cc" -std=gnu11 -Os -Wall -Wextra -static -s -o "$root/sbin/cvmm-agent" "$agent_src" ||
    die "cannot build cvmm-agent"

cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
EOF
cat > "$root/etc/group" <<'EOF'
root:x:0:
EOF
cat > "$root/etc/inittab" <<'EOF'
# busybox init takes over as PID 1 once /init printed "cvmm-tiny: ready":
# it reaps orphans and keeps a shell on the console.
::respawn:/bin/cttyhack /bin/sh -l
::ctrlaltdel:/sbin/poweroff -f
::shutdown:/bin/sync
EOF
cat > "$root/etc/profile" <<'EOF'
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
export PS1='\h:\w\$ '
EOF

# ACPI power button: busybox acpid reads /dev/input/event* (button + evdev
# modules) and, for the power button event "PWRF", runs /etc/acpi/PWRF/00000080.
cat > "$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "cvmm-tiny: power button, powering off" > /dev/console
sync
exec /sbin/poweroff -f
EOF
chmod 0755 "$root/etc/acpi/PWRF/00000080"
printf 'PWRF PWRF/00000080\n' > "$root/etc/acpid.conf"

# udhcpc hook: address, default route, resolvers
cat > "$root/usr/share/udhcpc/default.script" <<'EOF'
#!/bin/sh
# udhcpc event script (busybox): $1 is the event, parameters in the
# environment (interface ip mask router dns domain).
[ -n "$interface" ] || exit 1
resolv() {
    cat /run/resolv.* > /etc/resolv.conf.new 2>/dev/null && mv /etc/resolv.conf.new /etc/resolv.conf
}
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface" 2>/dev/null
    ip link set "$interface" up
    rm -f "/run/resolv.$interface"; resolv
    ;;
bound|renew)
    cur=$(ip -4 -o addr show dev "$interface" | awk '{print $4; exit}')
    if [ "$cur" != "$ip/${mask:-24}" ]; then
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
    fi
    if [ -n "$router" ]; then
        metric=$(cat "/sys/class/net/$interface/ifindex" 2>/dev/null || echo 0)
        for r in $router; do
            ip route replace default via "$r" dev "$interface" metric "$metric"
            break
        done
    fi
    {
        [ -n "$domain" ] && echo "search $domain"
        for d in $dns; do echo "nameserver $d"; done
    } > "/run/resolv.$interface"
    resolv
    ;;
leasefail|nak)
    ;;
esac
exit 0
EOF
chmod 0755 "$root/usr/share/udhcpc/default.script"

cat > "$root/init" <<'EOF'
#!/bin/sh
# cvmm tiny test guest.  Kernel command line options:
#   cvmm.name=NAME                       hostname, also in the HTTP answer
#   cvmm.ip=IFACE:ADDR/PREFIX[:GATEWAY]  static address instead of DHCP, e.g.
#                                        cvmm.ip=eth0:10.0.0.5/24:10.0.0.1
#                                        (repeat for more interfaces)
#   cvmm.dns=ADDR[,ADDR...]              resolvers for static addresses
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mount -t tmpfs -o mode=0755 dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
exec </dev/console >/dev/console 2>&1
say() { echo "cvmm-tiny: $*"; }
say booting

kver=$(cat /etc/kernel-release)
while read -r m; do
    insmod "/lib/modules/$kver/$m" 2>/dev/null
done < /etc/modules.order

name=cvmm-tiny
static=""
dns=""
for arg in $(cat /proc/cmdline); do
    case "$arg" in
    cvmm.name=*) name=${arg#cvmm.name=} ;;
    cvmm.ip=*)   static="$static ${arg#cvmm.ip=}" ;;
    cvmm.dns=*)  dns=${arg#cvmm.dns=} ;;
    esac
done
name=$(printf '%s' "$name" | tr -c 'A-Za-z0-9.-' '-' | cut -c1-63)
[ -n "$name" ] || name=cvmm-tiny
hostname "$name"
printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$name" > /etc/hosts

# the guest channel's agent (virtio_console is loaded): it goes to the
# background and says nothing on the console
/sbin/cvmm-agent

# power button -> /etc/acpi/PWRF/00000080 -> poweroff -f
acpid -c /etc/acpi -a /etc/acpid.conf -l /run/acpid.log -p /run/acpid.pid

# --- network ---------------------------------------------------------------
ip link set lo up
static_for() {  # IFACE -> "ADDR/PREFIX[:GW]" from cvmm.ip=
    for s in $static; do
        case "$s" in "$1":*) echo "${s#"$1":}"; return ;; esac
    done
}
ifaces=$(cd /sys/class/net && ls -d eth* 2>/dev/null)
for i in $ifaces; do
    ip link set "$i" up
    cfg=$(static_for "$i")
    if [ -n "$cfg" ]; then
        addr=${cfg%%:*}
        gw=""; case "$cfg" in *:*) gw=${cfg#*:} ;; esac
        ip addr add "$addr" dev "$i"
        [ -n "$gw" ] && ip route replace default via "$gw" dev "$i"
        [ -n "$dns" ] && for d in $(echo "$dns" | tr ',' ' '); do
            echo "nameserver $d"; done > "/run/resolv.$i" &&
            cat /run/resolv.* > /etc/resolv.conf
    else
        # 3 discovers 1 s apart; on failure udhcpc goes to the background and
        # keeps trying; on success it backgrounds too and renews the lease.
        udhcpc -i "$i" -t 3 -T 1 -A 3 -b -x "hostname:$name" \
            -s /usr/share/udhcpc/default.script > "/run/udhcpc.$i.log" 2>&1 &
    fi
done
wait
for i in $ifaces; do
    a=$(ip -4 -o addr show dev "$i" | awk '{print $4; exit}')
    if [ -n "$a" ]; then say "$i $a"; else say "$i no-dhcp"; fi
done

# --- disks -----------------------------------------------------------------
for b in /sys/block/vd*; do
    [ -e "$b/size" ] || continue
    say "disk ${b##*/} $(cat "$b/size")"
done

# --- topology (tests/integration/test_topology.py) -------------------------
# The NUMA nodes with their CPUs, and every PCI function with its IDs and
# class (bridges: root ports 1b36:000c, switch ports 104c:8232/8233).
for n in /sys/devices/system/node/node*; do
    [ -e "$n/cpulist" ] && say "numa ${n##*/} cpus $(cat "$n/cpulist")"
done
for d in /sys/bus/pci/devices/*; do
    [ -e "$d/vendor" ] || continue
    v=$(cat "$d/vendor") p=$(cat "$d/device") c=$(cat "$d/class")
    say "pci ${d##*/} ${v#0x}:${p#0x} ${c#0x} node $(cat "$d/numa_node" 2>/dev/null)"
done

# --- service ---------------------------------------------------------------
echo "hello from cvmm-tiny $name" > /www/index.html
httpd -p 8080 -h /www

say ready
exec /sbin/init
EOF
chmod 0755 "$root/init"

# /dev/console so the kernel can hand /init a console before devtmpfs is up
mknod -m 0600 "$root/dev/console" c 5 1 2>/dev/null || log "note: mknod failed, /init reopens the console itself"

log "packing initrd.img"
find "$root" -exec touch -h -d @0 {} +   # reproducible archive
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
    cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9n > "$out/initrd.img"
cp "$ext/kernel/boot/vmlinuz-$kver" "$out/vmlinuz"
cat > "$out/metadata.json" <<EOF
{"kernel": "vmlinuz", "initrd": "initrd.img", "cmdline": "$CMDLINE", "hda": "hda.qcow2"}
EOF
printf '%s\n' "$stamp" > "$out/.build-inputs"

# --- install -----------------------------------------------------------------

mkdir -p "$image"
# The base disk is blank and may be the backing file of running VMs'
# overlays: keep an existing valid one, create it only when missing.
if ! qemu-img info "$image/hda.qcow2" >/dev/null 2>&1; then
    qemu-img create -q -f qcow2 "$out/hda.qcow2" "$DISK_SIZE"
    mv -f "$out/hda.qcow2" "$image/hda.qcow2"
fi
chmod 0644 "$out"/*
sync -f "$out/initrd.img" 2>/dev/null || sync
for f in vmlinuz initrd.img metadata.json .build-inputs; do
    mv -f "$out/$f" "$image/$f"
done
log "installed image tiny in $image (kernel $kver, initrd $(stat -c %s "$image/initrd.img") bytes)"
