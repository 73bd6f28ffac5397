#!/usr/bin/env bash
# Build the appliance image: a disk image for a Raspberry Pi (arm64) or for amd64 test machines.
#
#   image/build.sh [--arch arm64|amd64] [--out DIR] [--compress]
#
# Runs on a Debian 12 host as root, with no Docker, loop devices or mounts:
#   wheels      the appliance and its pinned dependencies as wheels for the target architecture
#   rootfs      mmdebstrap: Debian bookworm + the package lists in image/packages.*, the overlay,
#               the systemd units, the firmware hooks and a venv in /opt/appliance/venv
#   partitions  boot (FAT, mtools), root (ext4 -d, read-only at run time), data (ext4 -d)
#   disk        one MBR disk image stitched with sfdisk + dd
# Layout, first boot and reproducibility: docs/image.md.
set -euo pipefail

HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
ROOT=$(dirname "$HERE")
ARCH=arm64
OUT=$ROOT/out
COMPRESS=0
SUITE=bookworm

# The disk layout (docs/image.md). Sizes are fixed numbers, never measured from the host.
DISK_ID=0x5afe7e57
BOOT_MIB=256
ROOT_MIB=1280
DATA_MIB=64
FIRST_MIB=4
ROOT_UUID=5afe7e57-0000-4000-8000-000000000002
DATA_UUID=5afe7e57-0000-4000-8000-000000000003
HASH_SEED=5afe7e57-0000-4000-8000-0000000000ff
BOOT_LABEL=APPLBOOT

START=$(date +%s)
stage() {
    local t=$(( $(date +%s) - START ))
    printf '==> [%02d:%02d] %s\n' $((t / 60)) $((t % 60)) "$*" >&2
}
die() { printf 'image/build.sh: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --arch) ARCH=${2:-}; shift 2 || usage ;;
        --arch=*) ARCH=${1#--arch=}; shift ;;
        --out) OUT=${2:-}; shift 2 || usage ;;
        --out=*) OUT=${1#--out=}; shift ;;
        --compress) COMPRESS=1; shift ;;
        -h|--help) usage ;;
        *) printf 'image/build.sh: unknown argument %s\n' "$1" >&2; usage ;;
    esac
done
case $ARCH in
    arm64) KERNEL_PKG=linux-image-arm64 ;;
    amd64) KERNEL_PKG=linux-image-amd64 ;;
    *) die "--arch must be arm64 or amd64, not '$ARCH'" ;;
esac
[ -n "$OUT" ] || die "--out needs a directory"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# --- host tools -----------------------------------------------------------------------------
HOST_PACKAGES=(mmdebstrap dosfstools mtools fdisk e2fsprogs faketime zstd python3-venv)
declare -A TOOL_OF=([mmdebstrap]=mmdebstrap [mkfs.vfat]=dosfstools [mcopy]=mtools
    [sfdisk]=fdisk [mkfs.ext4]=e2fsprogs [debugfs]=e2fsprogs [faketime]=faketime [zstd]=zstd)
HOST_ARCH=$(dpkg --print-architecture)
if [ "$ARCH" != "$HOST_ARCH" ]; then
    HOST_PACKAGES+=(qemu-user-static binfmt-support arch-test)
    TOOL_OF[arch-test]=arch-test
fi

host_tools() {
    local tool missing=()
    [ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap builds the root file system with its owners)"
    for tool in "${!TOOL_OF[@]}"; do
        command -v "$tool" >/dev/null || missing+=("${TOOL_OF[$tool]}")
    done
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    if [ ${#missing[@]} -gt 0 ]; then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        stage "installing host packages: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
            >/dev/null || die "could not install host packages: ${missing[*]}"
    fi
    if [ "$ARCH" != "$HOST_ARCH" ]; then
        if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
            mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
                || die "cannot mount binfmt_misc (needed to run $ARCH programs through qemu-user)"
        fi
        update-binfmts --enable >/dev/null 2>&1 || true
        arch-test "$ARCH" >/dev/null \
            || die "this host cannot run $ARCH programs (arch-test $ARCH failed; qemu-user-static and binfmt_misc are needed)"
    fi
}

# mirror URI for SUITE (or for SUITE-security when $1 = security), from the host's apt sources.
host_mirror() {
    local want=$1
    [ "$want" = main ] && [ -n "${APPLIANCE_MIRROR:-}" ] && { echo "$APPLIANCE_MIRROR"; return; }
    [ "$want" = security ] && [ -n "${APPLIANCE_SECURITY_MIRROR:-}" ] \
        && { echo "$APPLIANCE_SECURITY_MIRROR"; return; }
    python3 - "$want" "$SUITE" <<'PY'
import glob, re, sys
want, suite = sys.argv[1], sys.argv[2]
target = suite + "-security" if want == "security" else suite
found = []
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
        if "deb" in fields.get("Types", "").split() and target in fields.get("Suites", "").split():
            found += fields.get("URIs", "").split()
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
        if m and m.group(2) == target:
            found.append(m.group(1))
print(found[0] if found else "")
PY
}

# --- wheels -----------------------------------------------------------------------------------
build_wheels() {
    local dir=$1 venv=$WORK/hostvenv
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip >/dev/null
    "$venv/bin/pip" wheel -q --disable-pip-version-check --no-deps -w "$dir" "$ROOT" >/dev/null \
        || die "cannot build the appliance wheel"
    # The runtime closure, pinned by constraints.txt, as resolved for Linux + CPython 3.11.
    "$venv/bin/pip" install -q --disable-pip-version-check --dry-run --ignore-installed \
        --report "$WORK/resolve.json" -c "$ROOT/constraints.txt" "$dir"/appliance-*.whl >"$WORK/resolve.log" 2>&1 \
        || { tail -n 20 "$WORK/resolve.log" >&2; die "cannot resolve the runtime dependencies"; }
    python3 - "$WORK/resolve.json" > "$WORK/requirements.txt" <<'PY'
import json, sys
for item in json.load(open(sys.argv[1]))["install"]:
    meta = item["metadata"]
    if meta["name"] != "appliance":
        print(f'{meta["name"]}=={meta["version"]}')
PY
    local machine platforms=() req
    machine=$([ "$ARCH" = arm64 ] && echo aarch64 || echo x86_64)
    for tag in manylinux2014 manylinux_2_28 manylinux_2_31 manylinux_2_34 manylinux_2_35; do
        platforms+=(--platform "${tag}_$machine")
    done
    # One download for the whole closure; a package with no wheel at all comes as a source
    # archive, and only a pure-Python one may be built here for the target.
    "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --prefer-binary \
        "${platforms[@]}" --python-version 3.11 --implementation cp --abi cp311 --abi abi3 \
        --abi none -d "$dir" -r "$WORK/requirements.txt" >"$WORK/download.log" 2>&1 \
        || { tail -n 20 "$WORK/download.log" >&2; die "cannot download the $ARCH wheels"; }
    local sdist built
    for sdist in "$dir"/*.tar.gz "$dir"/*.zip; do
        [ -e "$sdist" ] || continue
        rm -rf "$WORK/pure" && mkdir -p "$WORK/pure"
        "$venv/bin/pip" wheel -q --disable-pip-version-check --no-deps -w "$WORK/pure" "$sdist" \
            >/dev/null 2>&1 || die "cannot build a wheel from $(basename "$sdist")"
        built=$(ls "$WORK"/pure/*.whl)
        case $built in
            *-py3-none-any.whl|*-py2.py3-none-any.whl) mv "$built" "$dir/" && rm "$sdist" ;;
            *) die "$(basename "$sdist") has no $ARCH wheel and is not pure Python" ;;
        esac
    done
    printf '%s\n' "$(ls "$dir" | wc -l) wheels"
}

# --- root file system -------------------------------------------------------------------------
packages() {
    cat "$HERE/packages.common" "$HERE/packages.$ARCH" | sed 's/#.*//' | tr -s ' \n' '\n' \
        | sed '/^$/d' | sort -u | paste -sd,
}

build_rootfs() {
    local rootdir=$1 mirror security components="main"
    mirror=$(host_mirror main)
    security=$(host_mirror security)
    [ -n "$mirror" ] || die "no Debian $SUITE mirror in the host's apt sources (set APPLIANCE_MIRROR)"
    [ "$ARCH" = arm64 ] && components="main non-free-firmware"
    local sources=("deb $mirror $SUITE $components" "deb $mirror $SUITE-updates $components")
    [ -n "$security" ] && sources+=("deb $security $SUITE-security $components")
    stage "rootfs: mmdebstrap $SUITE $ARCH from $mirror"
    mmdebstrap --mode=root --variant=minbase --architectures="$ARCH" \
        --include="$(packages)" \
        --dpkgopt=force-confold \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --setup-hook="'$HERE/setup.sh' '$ARCH' \"\$1\"" \
        --customize-hook="'$HERE/customize.sh' '$ARCH' \"\$1\" '$WORK/wheels'" \
        "$SUITE" "$rootdir" "${sources[@]}" \
        > "$WORK/mmdebstrap.log" 2>&1 \
        || { tail -n 40 "$WORK/mmdebstrap.log" >&2; die "mmdebstrap failed (log: $WORK/mmdebstrap.log)"; }
}

# --- partitions and disk ----------------------------------------------------------------------
# Set every inode's times to SOURCE_DATE_EPOCH: mke2fs -d copies ctime/atime from the host.
fix_inode_times() {
    local image=$1 tree=$2 stamp
    stamp=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S)
    (cd "$tree" && find . -mindepth 1 -printf '%P\n') | LC_ALL=C sort | while read -r path; do
        for field in atime ctime mtime crtime; do
            printf 'sif "/%s" %s %s\n' "$path" "$field" "$stamp"
            printf 'sif "/%s" %s_extra 0\n' "$path" "$field"
        done
    done > "$WORK/debugfs.cmds"
    for field in atime ctime mtime crtime; do
        printf 'sif / %s %s\nsif / %s_extra 0\n' "$field" "$stamp" "$field"
    done >> "$WORK/debugfs.cmds"
    E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH debugfs -w -f "$WORK/debugfs.cmds" "$image" \
        >/dev/null 2>"$WORK/debugfs.err" \
        || { cat "$WORK/debugfs.err" >&2; die "debugfs could not set inode times in $image"; }
}

make_ext4() {
    local image=$1 tree=$2 label=$3 uuid=$4 mib=$5
    rm -f "$image"
    truncate -s "${mib}M" "$image"
    E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH faketime "@$SOURCE_DATE_EPOCH" \
        mkfs.ext4 -q -F -L "$label" -U "$uuid" -E "hash_seed=$HASH_SEED,root_owner=0:0" \
        -I 256 -m 1 -d "$tree" "$image" \
        || die "mkfs.ext4 could not make $label from $tree (is ${mib} MiB too small?)"
    fix_inode_times "$image" "$tree"
    E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH e2fsck -fy "$image" >/dev/null 2>&1 || true
}

make_fat() {
    local image=$1 tree=$2 frozen
    # FAT keeps local times of creation and change: a frozen clock and files dated
    # SOURCE_DATE_EPOCH (faketime without "@" does not let the clock run).
    frozen=$(TZ=UTC date -u -d "@$SOURCE_DATE_EPOCH" '+%Y-%m-%d %H:%M:%S')
    find "$tree" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    rm -f "$image"
    truncate -s "${BOOT_MIB}M" "$image"
    TZ=UTC faketime "$frozen" mkfs.vfat -F 32 -n "$BOOT_LABEL" -i "${DISK_ID#0x}" "$image" \
        >/dev/null || die "mkfs.vfat failed"
    local entry
    (cd "$tree" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) > "$WORK/fat.list"
    while read -r entry; do
        if [ -d "$tree/$entry" ]; then
            TZ=UTC MTOOLS_SKIP_CHECK=1 faketime "$frozen" mmd -i "$image" "::/$entry"
        else
            TZ=UTC MTOOLS_SKIP_CHECK=1 faketime "$frozen" mcopy -m -i "$image" \
                "$tree/$entry" "::/$entry"
        fi
    done < "$WORK/fat.list"
}

assemble() {
    local disk=$1 boot_type=0c
    local boot_start=$((FIRST_MIB * 2048)) boot_size=$((BOOT_MIB * 2048))
    local root_start=$((boot_start + boot_size)) root_size=$((ROOT_MIB * 2048))
    local data_start=$((root_start + root_size)) data_size=$((DATA_MIB * 2048))
    [ "$ARCH" = amd64 ] && boot_type=ef
    rm -f "$disk"
    truncate -s $(( (data_start + data_size) * 512 )) "$disk"
    sfdisk -q "$disk" <<SFDISK || die "sfdisk could not write the partition table"
label: dos
label-id: $DISK_ID
unit: sectors

start=$boot_start, size=$boot_size, type=$boot_type, bootable
start=$root_start, size=$root_size, type=83
start=$data_start, size=$data_size, type=83
SFDISK
    dd if="$WORK/boot.vfat" of="$disk" bs=1M seek=$FIRST_MIB conv=notrunc,sparse status=none
    dd if="$WORK/root.ext4" of="$disk" bs=1M seek=$((FIRST_MIB + BOOT_MIB)) conv=notrunc,sparse status=none
    dd if="$WORK/data.ext4" of="$disk" bs=1M seek=$((FIRST_MIB + BOOT_MIB + ROOT_MIB)) \
        conv=notrunc,sparse status=none
}

# --- main ---------------------------------------------------------------------------------------
stage "appliance image for $ARCH into $OUT"
host_tools
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 1700000000)
fi
export SOURCE_DATE_EPOCH
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/appliance-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/wheels" "$WORK/pure"

stage "wheels: the appliance and its pinned dependencies for $ARCH"
build_wheels "$WORK/wheels" >&2

build_rootfs "$WORK/rootfs"

stage "partitions: boot (FAT), root (ext4, read-only), data (ext4)"
RFS=$WORK/rootfs
# The machine ID is made on first boot (initramfs: /data/machine-id), never in the image;
# mmdebstrap removes both files at its end, so they are put back here.
: > "$RFS/etc/machine-id"
ln -sfn /etc/machine-id "$RFS/var/lib/dbus/machine-id"
mkdir -p "$WORK/bootfs" "$WORK/datafs"
cp -a "$RFS/boot/firmware/." "$WORK/bootfs/"
find "$RFS/boot/firmware" -mindepth 1 -delete
mv "$RFS/data.seed/." "$WORK/datafs/" 2>/dev/null || cp -a "$RFS/data.seed/." "$WORK/datafs/"
rm -rf "$RFS/data.seed"
# Manifests: what the reproducibility check compares between two builds.
NAME=appliance-$ARCH
dpkg-query --admindir="$RFS/var/lib/dpkg" -W -f '${Package} ${Version} ${Architecture}\n' \
    | LC_ALL=C sort > "$OUT/$NAME.packages"
(cd "$RFS" && find . -printf '%p %M %U:%G %s\n' | LC_ALL=C sort) > "$OUT/$NAME.files"
make_fat "$WORK/boot.vfat" "$WORK/bootfs"
make_ext4 "$WORK/root.ext4" "$RFS" appliance-root "$ROOT_UUID" "$ROOT_MIB"
make_ext4 "$WORK/data.ext4" "$WORK/datafs" appliance-data "$DATA_UUID" "$DATA_MIB"

stage "disk: MBR $DISK_ID, boot ${BOOT_MIB} MiB + root ${ROOT_MIB} MiB + data ${DATA_MIB} MiB (grows on first boot)"
assemble "$OUT/$NAME.img.part"
mv "$OUT/$NAME.img.part" "$OUT/$NAME.img"
IMAGE=$OUT/$NAME.img
if [ "$COMPRESS" = 1 ]; then
    stage "compressing with zstd"
    zstd -q -f -T0 -12 "$IMAGE" -o "$IMAGE.zst"
    IMAGE=$IMAGE.zst
fi

ROOT_USED=$(du -s --block-size=1M "$RFS" | cut -f1)
BOOT_USED=$(du -s --block-size=1M "$WORK/bootfs" | cut -f1)
SHA=$(sha256sum "$IMAGE" | cut -d' ' -f1)
printf '%s  %s\n' "$SHA" "$(basename "$IMAGE")" > "$IMAGE.sha256"
stage "done"
cat >&2 <<SUMMARY
image:   $IMAGE
size:    $(du -h --apparent-size "$IMAGE" | cut -f1) ($(stat -c %s "$IMAGE") bytes; root file system ${ROOT_USED} MiB used, boot ${BOOT_USED} MiB used)
sha256:  $SHA
built:   $(( $(date +%s) - START )) s, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH
SUMMARY
