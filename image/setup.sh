#!/usr/bin/env bash
# mmdebstrap setup hook (before any package is installed): $1 = ARCH, $2 = the root directory.
# Files here must exist before their packages install: the Raspberry Pi firmware defaults
# (kept over the packages' conffiles by --dpkgopt=force-confold) and the initramfs settings.
set -euo pipefail
ARCH=$1
RFS=$2
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)

mkdir -p "$RFS/etc/initramfs-tools/scripts/local-bottom" "$RFS/etc/initramfs-tools/conf.d"
cp "$HERE/overlay/etc/initramfs-tools/conf.d/appliance.conf" "$RFS/etc/initramfs-tools/conf.d/"
cp "$HERE/overlay/etc/initramfs-tools/scripts/local-bottom/appliance-data" \
    "$RFS/etc/initramfs-tools/scripts/local-bottom/"
cp "$HERE/initramfs-modules.$ARCH" "$RFS/etc/initramfs-tools/modules"
# The initramfs checks the root's fstab entry to decide which fsck it carries.
cp "$HERE/overlay/etc/fstab" "$RFS/etc/fstab"
# The boot settings and the watchdog; firmware-hooks/install adds the kernel hooks later.
"$HERE/../firmware-hooks/raspi-firmware" "$RFS" "$ARCH"
"$HERE/../firmware-hooks/watchdog" "$RFS" "$ARCH"
