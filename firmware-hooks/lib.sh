# firmware-hooks/lib.sh: helpers shared by the firmware hooks (sourced, never run on its own).
#
# Every file the hooks write goes through put_file: compared first (cmp), written only when
# its bytes or mode differ, and then through a temporary file in the same directory, synced
# and renamed over the old one, so a power cut leaves the old file or the new one, never half
# of either. A second run therefore changes nothing, mtimes included.
# shellcheck shell=sh

say() {
    printf 'firmware-hooks: %s\n' "$*"
}

warn() {
    printf 'firmware-hooks: %s\n' "$*" >&2
}

# The boot partition (FAT32, APPLBOOT) is mounted at /boot/firmware on both arches. On the box
# it is mounted read-only like the root, and an update that must write to it fails here.
die_boot_unwritable() {
    warn "error: cannot write to $1 ($2)."
    warn "On the box the boot partition is mounted read-only: run"
    warn "    mount -o remount,rw /boot/firmware"
    warn "(and mount -o remount,rw / for the root), then run the update again."
    exit 1
}

# require_boot_dir DIR: DIR (ROOT/boot/firmware) must be a writable directory.
require_boot_dir() {
    if [ ! -e "$1" ]; then
        die_boot_unwritable "$1" "it does not exist: is the boot partition mounted?"
    elif [ ! -d "$1" ]; then
        die_boot_unwritable "$1" "it is not a directory"
    elif [ ! -w "$1" ]; then
        die_boot_unwritable "$1" "it is not writable"
    fi
}

# same_file SRC DEST [MODE]: true when DEST has SRC's bytes (and MODE, when given).
same_file() {
    if [ ! -f "$2" ] || ! cmp -s "$1" "$2"; then
        return 1
    fi
    [ -z "${3:-}" ] || [ "$(stat -c %a "$2")" = "${3#0}" ]
}

# stage SRC DEST [MODE]: copy SRC to DEST.new, with MODE, synced to disk. Returns non-zero on
# any failure, leaving no DEST.new behind.
stage() {
    rm -f "$2.new" 2>/dev/null || true
    if cp "$1" "$2.new" 2>/dev/null \
        && { [ -z "${3:-}" ] || chmod "$3" "$2.new"; } \
        && sync "$2.new"; then
        return 0
    fi
    rm -f "$2.new" 2>/dev/null || true
    return 1
}

# commit DEST: rename DEST.new over DEST (atomic within one file system) and sync the
# file system that holds it, so the rename itself reaches the disk.
commit() {
    mv -f "$1.new" "$1" && sync -f "$1"
}

# put_file SRC DEST [MODE]: make DEST carry SRC's bytes (and MODE). MODE is left out for files
# on the FAT boot partition, where modes are the mount's and chmod fails. Prints what changed.
put_file() {
    if same_file "$1" "$2" "${3:-}"; then
        return 0
    fi
    mkdir -p "$(dirname "$2")"
    if [ -f "$2" ] && cmp -s "$1" "$2"; then
        chmod "$3" "$2"
        say "mode of $2 set to $3"
        return 0
    fi
    stage "$1" "$2" "${3:-}" || return 1
    commit "$2" || return 1
    say "wrote $2"
}
