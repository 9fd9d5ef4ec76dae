#!/bin/bash
# nested-vfio.sh: gpu-vfio on a real kernel's VFIO, inside an outer guest.
#
#   tests/gpu/nested-vfio.sh [BUILD_DIR]      (root; about 2-4 min under TCG)
#
# The outer guest (TCG, q35) has a virtual IOMMU (intel-iommu, the guest
# kernel booted with intel_iommu=on) and one extra PCI device, a
# virtio-rng-pci (1af4:1044, driven by virtio-pci, DMA through the vIOMMU:
# iommu_platform=on). Its root file system is this host's / shared
# read-only over virtiofs (virtiofsd), with tmpfs on /tmp and /run, so
# cvmmd, the plugins, QEMU and python3 are this tree's and this host's.
# Its kernel is the tiny test guest's (Debian's cloud kernel), its
# initramfs busybox plus the modules it needs (virtiofs, virtio-pci, vfio).
# Inside, tests/gpu/nested-vfio-inner.py runs cvmmd with gpu-vfio
# (cvm.gpu.listing = ["1af4:1044"]) and checks: the readiness report sees
# the IOMMU, a start binds the device to vfio-pci, the inner QEMU has
# /dev/vfio/N open, and a stop gives the device back to virtio-pci. The
# inner guest's boot (TCG inside TCG) is not waited for.
# Exit status 0 when the inner script printed "NESTED: PASS".
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}
QEMU=${QEMU:-qemu-system-x86_64}
VIRTIOFSD=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}
KDEB=$(ls /var/cache/cvmm/guest/debs/linux-image-*-cloud-amd64_*.deb 2>/dev/null | head -1)
KERNEL=/var/lib/cvmm/images/tiny/vmlinuz
TIMEOUT=${CVMM_NESTED_TIMEOUT:-240}

fail() { echo "nested-vfio: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (virtiofsd, /dev/vfio in the guest)"
[ -n "$KDEB" ] || fail "no cached cloud kernel package (run scripts/build-test-guest.sh)"
for t in "$QEMU" "$VIRTIOFSD" busybox depmod modprobe cpio gzip dpkg-deb; do
	command -v "$t" >/dev/null || [ -x "$t" ] || fail "$t not found"
done
[ -x "$build/core/cvmmd" ] || fail "$build/core/cvmmd not built"

work=$(mktemp -d /tmp/cvmm-nested.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# ---- the outer guest's initramfs ----
dpkg-deb -x "$KDEB" "$work/k"
kver=$(ls "$work/k/lib/modules")
depmod -b "$work/k" "$kver"
ir=$work/initramfs
mkdir -p "$ir"/{bin,mods,proc,sys,dev,host}
cp "$(command -v busybox)" "$ir/bin/busybox"
: >"$ir/mods/order"
for m in virtio_pci virtiofs vfio_iommu_type1 vfio_pci; do
	modprobe -d "$work/k" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
	cp "$ko" "$ir/mods/"
	basename "$ko" >>"$ir/mods/order"
done
cat >"$ir/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in \$(cat /mods/order); do insmod /mods/\$m || echo "NESTED: insmod \$m failed"; done
mount -t virtiofs hostroot /host -o ro || { echo "NESTED: FAIL virtiofs"; poweroff -f; }
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm 2>/dev/null
mount -t devpts devpts /host/dev/pts
mount -t tmpfs shm /host/dev/shm
mount -t tmpfs tmp /host/tmp
mount -t tmpfs run /host/run
mount -t tmpfs varrun /host/var/tmp
echo "NESTED: outer guest up, \$(ls /sys/class/iommu) IOMMU, \$(ls /sys/kernel/iommu_groups | wc -l) groups"
chroot /host /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp \
	CVMM_BUILD_DIR=$build PYTHONDONTWRITEBYTECODE=1 \
	CVMM_NESTED_INNER_WAIT=${CVMM_NESTED_INNER_WAIT:-0} \
	/usr/bin/python3 $src/tests/gpu/nested-vfio-inner.py
echo "NESTED: inner script exit \$?"
poweroff -f
EOF
chmod +x "$ir/init"
(cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.img"

# ---- virtiofsd: this host's / for the guest ----
"$VIRTIOFSD" --socket-path="$work/fs.sock" -o source=/ -o cache=always -o announce_submounts \
	-o sandbox=chroot >"$work/virtiofsd.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$work/fs.sock" ] && break; sleep 0.1; done
[ -S "$work/fs.sock" ] || { cat "$work/virtiofsd.log"; fail "virtiofsd did not start"; }

# ---- the outer guest ----
start=$(date +%s)
timeout "$TIMEOUT" "$QEMU" -machine q35,accel=tcg -cpu max -smp 1 -m 2048 \
	-object memory-backend-memfd,id=mem,size=2048M,share=on -numa node,memdev=mem \
	-device intel-iommu,intremap=on \
	-chardev socket,id=fs,path="$work/fs.sock" \
	-device vhost-user-fs-pci,chardev=fs,tag=hostroot \
	-device virtio-rng-pci,disable-legacy=on,iommu_platform=on \
	-kernel "$KERNEL" -initrd "$work/initrd.img" \
	-append "console=ttyS0 panic=-1 intel_iommu=on quiet" \
	-nographic -no-reboot -nodefaults -serial file:"$work/console.log" &
qpid=$!
pids+=($qpid)
wait "$qpid"
rc=$?
took=$(($(date +%s) - start))
grep -a "NESTED" "$work/console.log" || tail -30 "$work/console.log"
echo "nested-vfio: outer QEMU exit $rc after ${took}s"
grep -aq "NESTED: PASS" "$work/console.log"
