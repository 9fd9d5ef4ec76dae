#!/bin/bash
# build-debian-guest.sh — build a Debian 12 guest the way people run them:
# systemd, cloud-init (NoCloud), openssh-server, the cloud kernel.
#
#   scripts/build-debian-guest.sh [-f|--force] [--image-dir DIR]
#
# Outputs, under the cache ($CVMM_CACHE_DIR/debian, else
# /var/cache/cvmm/debian), in a folder named after this script's hash:
#
#   disk.qcow2     a GPT disk that boots by itself: a BIOS boot partition
#                  (GRUB i386-pc core image), an EFI system partition
#                  (GRUB x86_64-efi as \EFI\BOOT\BOOTX64.EFI) and the ext4
#                  root. Boots under SeaBIOS and under OVMF; import it with
#                  `cvmm image import NAME disk.qcow2 --firmware bios|uefi
#                  --cloud-init`.
#   vmlinuz, initrd.img, root.qcow2
#                  the same system as kernel + unpartitioned root filesystem
#
# and, with --image-dir DIR (default: $CVMM_IMAGE_PATH, else
# /var/lib/cvmm/images), installs the second as image "debian" in DIR
# (metadata.json: kernel, initrd, hda, cmdline root=/dev/vda, cloud_init).
# The script prints the cache folder on stdout.
#
# Rebuilt only when this script changes (or with -f): the packages are the
# mirror's newest at build time. Packages come from the host's own Debian
# apt sources (the files under /etc/apt that name a bookworm suite of a
# Debian archive), or from $CVMM_DEBIAN_MIRROR (a URL or a sources file).
# No recommends, no documentation: about 200 MiB used. Needs root, mmdebstrap,
# grub-pc-bin, grub-efi-amd64-bin, mtools, dosfstools, fdisk, e2fsprogs,
# qemu-utils; no loop devices and no mounts (mkfs.ext4 -d, mtools, and GRUB's
# core image written into its partition by this script, as grub-bios-setup
# would).
set -euo pipefail

prog=build-debian-guest
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=0
image_root=${CVMM_IMAGE_PATH:-/var/lib/cvmm/images}
while [ $# -gt 0 ]; do
    case "$1" in
    -f|--force) force=1 ;;
    --image-dir) image_root=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1" ;;
    esac
    shift
done
for t in mmdebstrap grub-mkimage mkfs.ext4 mkfs.vfat mcopy sfdisk qemu-img sha256sum; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (run scripts/install-deps.sh)"
done
[ -d /usr/lib/grub/i386-pc ] || die "grub-pc-bin is not installed"
[ -d /usr/lib/grub/x86_64-efi ] || die "grub-efi-amd64-bin is not installed"

self=$(readlink -f "$0")
key=$(sha256sum "$self" | cut -c1-16)
cache_root=${CVMM_CACHE_DIR:-/var/cache/cvmm}/debian
out=$cache_root/$key

install_image() {
    [ -n "$image_root" ] || return 0
    local dir=$image_root/debian
    if [ "$(cat "$dir/.build-key" 2>/dev/null)" = "$key" ]; then
        return 0
    fi
    local tmp
    tmp=$(mktemp -d "$image_root/.debian.XXXXXX")
    cp --reflink=auto "$out/vmlinuz" "$out/initrd.img" "$out/root.qcow2" "$tmp/"
    cat >"$tmp/metadata.json" <<EOF
{"kernel": "vmlinuz", "initrd": "initrd.img", "hda": "root.qcow2",
 "cmdline": "root=/dev/vda rw console=ttyS0 net.ifnames=0",
 "cloud_init": true}
EOF
    echo "$key" >"$tmp/.build-key"
    rm -rf "$dir.old"
    [ ! -e "$dir" ] || mv "$dir" "$dir.old"
    mv "$tmp" "$dir"
    rm -rf "$dir.old"
    log "installed image 'debian' in $dir"
}

if [ "$force" -eq 0 ] && [ -f "$out/.done" ]; then
    log "cached: $out"
    mkdir -p "$image_root"
    install_image
    echo "$out"
    exit 0
fi

# --- apt sources --------------------------------------------------------------
mirrors=()
if [ -n "${CVMM_DEBIAN_MIRROR:-}" ]; then
    mirrors=("$CVMM_DEBIAN_MIRROR")
else
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # A Debian archive's bookworm suites only: third-party repositories
        # (a cloud SDK, node) have no business in the guest.
        if grep -qw 'bookworm' "$f" && grep -Eq '^[^#]*(URIs:|deb) .*/debian(-security)?/?( |$)' "$f"; then
            mirrors+=("$f")
        fi
    done
    [ ${#mirrors[@]} -gt 0 ] || mirrors=("http://deb.debian.org/debian")
fi
log "apt sources: ${mirrors[*]}"

work=$(mktemp -d "${TMPDIR:-/var/tmp}/cvmm-debian.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

PACKAGES=systemd,systemd-sysv,udev,dbus,cloud-init,openssh-server,sudo,iproute2,iputils-ping,linux-image-cloud-amd64,initramfs-tools,e2fsprogs
ROOT_UUID=6a1c0b7e-1c57-4b38-9d6b-c0ffee000001
t0=$(date +%s)
log "mmdebstrap bookworm into $root"
# unsafe-io: no fsync per unpacked file (a throwaway tree, copied into the
# image at the end); this halves the build on a busy disk.
mmdebstrap --variant=minbase --include="$PACKAGES" \
    --dpkgopt='force-unsafe-io' --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    bookworm "$root" "${mirrors[@]}" </dev/null >&2

# --- configuration ------------------------------------------------------------
echo "UUID=$ROOT_UUID / ext4 defaults,errors=remount-ro 0 1" >"$root/etc/fstab"
echo debian >"$root/etc/hostname"
# NoCloud only: probing the other datasources costs tens of seconds under TCG.
cat >"$root/etc/cloud/cloud.cfg.d/90-cvmm.cfg" <<'EOF'
datasource_list: [ NoCloud, None ]
EOF
# systemd-networkd renders cloud-init's network-config (and runs DHCP);
# without ifupdown cloud-init picks the networkd renderer.
ln -sf /lib/systemd/system/systemd-networkd.service \
    "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
# Timers and jobs a throwaway guest does not need and TCG pays for.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
    ln -sf /dev/null "$root/etc/systemd/system/$u"
done
# Boot fast under TCG: no wait for every link to be online.
mkdir -p "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat >"$root/etc/systemd/system/systemd-networkd-wait-online.service.d/cvmm.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=30
EOF
rm -f "$root/etc/ssh/ssh_host_"* # per guest, made at its first boot
rm -f "$root/etc/machine-id" && : >"$root/etc/machine-id"

kver=$(ls "$root/boot" | sed -n 's/^vmlinuz-//p' | sort -V | tail -n1)
[ -n "$kver" ] || die "no kernel installed in the guest"
CMDLINE="root=UUID=$ROOT_UUID rw console=ttyS0 net.ifnames=0"

# --- root filesystem ----------------------------------------------------------
used_mb=$(du -sm "$root" | cut -f1)
root_mb=$((used_mb * 13 / 10 + 256))
log "root filesystem: $used_mb MiB used, $root_mb MiB ext4"
truncate -s "${root_mb}M" "$work/root.ext4"
mkfs.ext4 -q -F -L debian-root -U "$ROOT_UUID" -d "$root" "$work/root.ext4"

# --- bootloaders --------------------------------------------------------------
# The same configuration embedded in both core images: find the root by its
# UUID (whatever disk order the firmware gives), boot the kernel.
cat >"$work/grub.cfg" <<EOF
search --no-floppy --fs-uuid --set=root $ROOT_UUID
linux /boot/vmlinuz-$kver $CMDLINE
initrd /boot/initrd.img-$kver
boot
EOF
MODS="part_gpt ext2 search search_fs_uuid linux boot echo normal configfile"
grub-mkimage -O i386-pc -o "$work/core.img" -c "$work/grub.cfg" -p /boot/grub biosdisk $MODS
grub-mkimage -O x86_64-efi -o "$work/BOOTX64.EFI" -c "$work/grub.cfg" -p /boot/grub $MODS

esp_mb=8
truncate -s "${esp_mb}M" "$work/esp.img"
mkfs.vfat -n EFI "$work/esp.img" >/dev/null
mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$work/esp.img" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

# --- the partitioned disk -----------------------------------------------------
# 1 MiB gap, BIOS boot 1 MiB, ESP, root; 1 MiB for the backup GPT.
bb_start=2048 bb_len=2048
esp_start=$((bb_start + bb_len)) esp_len=$((esp_mb * 2048))
root_start=$((esp_start + esp_len)) root_len=$((root_mb * 2048))
disk_sectors=$((root_start + root_len + 2048))
truncate -s $((disk_sectors * 512)) "$work/disk.raw"
sfdisk -q "$work/disk.raw" <<EOF
label: gpt
start=$bb_start, size=$bb_len, type=21686148-6449-6E6F-744E-656564454649, name=bios
start=$esp_start, size=$esp_len, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
start=$root_start, size=$root_len, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
EOF
dd if="$work/esp.img" of="$work/disk.raw" bs=512 seek=$esp_start conv=notrunc,sparse status=none
dd if="$work/root.ext4" of="$work/disk.raw" bs=512 seek=$root_start conv=notrunc,sparse status=none

# GRUB for BIOS, as grub-bios-setup does it for a GPT disk: boot.img in the
# MBR's code area (the protective partition table stays), told where core.img
# starts (le64 at 0x5c); core.img in the BIOS boot partition, its first
# sector's blocklist (the last 12 bytes: le64 start, le16 sectors, le16
# segment 0x820) naming the rest of it.
core_sectors=$(( ($(stat -c %s "$work/core.img") + 511) / 512 ))
[ "$core_sectors" -le "$bb_len" ] || die "core.img does not fit the BIOS boot partition"
truncate -s $((core_sectors * 512)) "$work/core.img"
le() { # le VALUE BYTES -> printf escapes, little-endian
    local v=$1 n=$2 s=""
    for _ in $(seq "$n"); do s+=$(printf '\\x%02x' $((v & 255))); v=$((v >> 8)); done
    printf '%s' "$s"
}
printf "$(le $((bb_start + 1)) 8)$(le $((core_sectors - 1)) 2)$(le $((0x820)) 2)" |
    dd of="$work/core.img" bs=1 seek=500 conv=notrunc status=none
dd if="$work/core.img" of="$work/disk.raw" bs=512 seek=$bb_start conv=notrunc status=none
cp /usr/lib/grub/i386-pc/boot.img "$work/boot.img"
printf "$(le $bb_start 8)" | dd of="$work/boot.img" bs=1 seek=$((0x5c)) conv=notrunc status=none
dd if="$work/boot.img" of="$work/disk.raw" bs=440 count=1 conv=notrunc status=none

# --- outputs ------------------------------------------------------------------
mkdir -p "$cache_root"
tmp_out=$(mktemp -d "$cache_root/.build.XXXXXX")
qemu-img convert -O qcow2 "$work/disk.raw" "$tmp_out/disk.qcow2"
qemu-img convert -O qcow2 "$work/root.ext4" "$tmp_out/root.qcow2"
cp "$root/boot/vmlinuz-$kver" "$tmp_out/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$tmp_out/initrd.img"
echo "$kver" >"$tmp_out/kernel-version"
touch "$tmp_out/.done"
rm -rf "$out"
mv "$tmp_out" "$out"
# Older builds (another script hash) are dropped: a cache, not an archive.
for d in "$cache_root"/*/; do
    [ "${d%/}" = "$out" ] || rm -rf "${d%/}"
done
log "built in $(( $(date +%s) - t0 )) s: $out ($(du -sh "$out" | cut -f1))"
mkdir -p "$image_root"
install_image
echo "$out"
