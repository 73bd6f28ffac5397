#!/usr/bin/env bash
# mmdebstrap customize hook (after all packages are installed):
#   $1 = ARCH, $2 = the root directory, $3 = a directory of wheels for ARCH.
# Installs the overlay, the systemd units, the service users, the venv in /opt/appliance,
# the firmware hooks, and prepares the data partition's initial contents in /data.seed.
set -euo pipefail
ARCH=$1
RFS=$2
WHEELS=$3
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
SRC=$(dirname "$HERE")
: "${SOURCE_DATE_EPOCH:?}"
in_root() { chroot "$RFS" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
    SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" "$@"; }

# The overlay: fstab, hostname, journald limits, default DHCP, initramfs and first-boot parts.
cp -a --no-preserve=ownership "$HERE/overlay/." "$RFS/"
ln -sfn /run/issue.d "$RFS/etc/issue.d"

# Units and users from systemd/.
install -m 0644 "$SRC"/systemd/*.service "$SRC"/systemd/*.socket "$SRC"/systemd/*.path \
    "$RFS/usr/lib/systemd/system/"
install -m 0644 "$SRC/systemd/appliance.sysusers" "$RFS/usr/lib/sysusers.d/appliance.conf"
install -m 0644 "$SRC/systemd/appliance-net.sysusers" "$RFS/usr/lib/sysusers.d/appliance-net.conf"
in_root systemd-sysusers
in_root passwd -q -l root

# The appliance in a venv, from wheels only (no index, no compiler on the box).
rm -rf "$RFS/tmp/wheels" && cp -r "$WHEELS" "$RFS/tmp/wheels"
in_root python3 -m venv /opt/appliance/venv
in_root /opt/appliance/venv/bin/python -m pip install -q --disable-pip-version-check --no-index \
    --no-compile --find-links /tmp/wheels appliance
in_root /opt/appliance/venv/bin/python -m pip uninstall -q -y pip
# The root is read-only: compile every module now (checked-hash: reproducible). Bytecode
# depends only on the Python version, so the host compiles when its bytecode is the target's
# (much faster than under emulation); co_filename is the path on the box.
magic='import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())'
if [ "$(python3 -c "$magic")" = "$(in_root python3 -c "$magic")" ]; then
    python3 -m compileall -q -j 0 --invalidation-mode checked-hash -s "$RFS" -p / \
        "$RFS/opt/appliance/venv/lib" >/dev/null
else
    in_root /opt/appliance/venv/bin/python -m compileall -q -j 0 --invalidation-mode checked-hash \
        /opt/appliance/venv/lib >/dev/null
fi
rm -rf "$RFS/tmp/wheels"
install -D -m 0644 "$SRC/appliance/config/default.toml" "$RFS/usr/share/appliance/appliance.toml"

# Units enabled at boot. The getty on the serial console comes from console= (systemd-getty-generator).
systemctl --root="$RFS" enable --quiet appliance.service appliance-net.socket \
    appliance-net.service appliance-net-networkd.path appliance-firstboot.service \
    appliance-console-banner.service systemd-networkd.service systemd-resolved.service \
    systemd-timesyncd.service
# A box without a cable must still start its service: wait for any one link, 20 s at most.
mkdir -p "$RFS/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat > "$RFS/etc/systemd/system/systemd-networkd-wait-online.service.d/appliance.conf" <<'CONF'
# A box without a cable must still start its service: any one link, 20 s at most.
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=20
CONF

# Mount points of the data partition and of what is bound from it (etc/fstab).
mkdir -p "$RFS/data" "$RFS/boot/firmware" "$RFS/etc/appliance" "$RFS/var/lib/appliance" \
    "$RFS/var/lib/appliance-net" "$RFS/var/log"

# Firmware hooks: installed for kernel/firmware updates, and run once now.
"$SRC/firmware-hooks/install" "$RFS" "$ARCH"

# The data partition's first contents.
uid() { awk -F: -v n="$1" '$1 == n { print $3 }' "$RFS/etc/passwd"; }
gid() { awk -F: -v n="$1" '$1 == n { print $3 }' "$RFS/etc/group"; }
SEED=$RFS/data.seed
rm -rf "$SEED"
install -d -m 0755 "$SEED" "$SEED/etc" "$SEED/lib" "$SEED/log"
install -d -m 0755 "$SEED/etc/appliance"
install -m 0640 -o 0 -g "$(gid appliance)" "$SRC/appliance/config/default.toml" \
    "$SEED/etc/appliance/appliance.toml"
install -d -m 0700 -o "$(uid appliance)" -g "$(gid appliance)" "$SEED/lib/appliance"
install -d -m 0700 -o "$(uid appliance-net)" -g "$(gid appliance-net)" "$SEED/lib/appliance-net"
cp -a "$RFS/var/lib/systemd" "$SEED/lib/systemd"
install -d -m 2755 -o 0 -g "$(gid systemd-journal)" "$SEED/log/journal"

# Nothing of the build host or of the build's moment stays in the image.
rm -rf "$RFS"/var/cache/apt/*.bin "$RFS"/var/lib/apt/lists/* "$RFS"/var/cache/ldconfig/aux-cache \
    "$RFS"/var/cache/debconf/*-old "$RFS"/var/lib/dpkg/*-old "$RFS"/etc/*-
find "$RFS/var/log" -type f -delete
find "$RFS/tmp" "$RFS/var/tmp" -mindepth 1 -delete
