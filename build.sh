#!/usr/bin/env bash
# Build, run and test the appliance.
#
#   ./build.sh run [ARGS...]   make/refresh .venv, run the service in the foreground on the
#                              embedded default config (ARGS go to `appliance run`)
#   ./build.sh test [PYTEST ARGS...]
#                              install what the tests need (apt packages, .venv), then
#                              ruff, mypy and the whole pytest suite; non-zero on any failure
#   ./build.sh image [--arch arm64|amd64] [--out DIR] [--compress]
#                              build the appliance disk image (as root; default arm64 into
#                              ./out); see docs/image.md
set -euo pipefail

cd "$(dirname "$(readlink -f "$0")")"
ROOT=$PWD
VENV=$ROOT/.venv
PYTHON=${PYTHON:-python3}

# Debian packages the test suite drives as real peers and tools.
TEST_APT_PACKAGES=(systemd sip-tester chromium liblinphone10 iproute2 util-linux dnsmasq-base shellcheck)
# A kernel without 802.1Q runs the VLAN tests in a qemu VM on Debian's kernel (tests/net/vm.py).
VLAN_VM_APT_PACKAGES=(qemu-system-x86)
# The image tests (tests/image, as root) build both images and boot them under qemu.
IMAGE_APT_PACKAGES=(mmdebstrap qemu-user-static binfmt-support arch-test dosfstools mtools fdisk
    e2fsprogs faketime zstd qemu-system-x86 qemu-system-arm python3-venv)

say() {
    if [ -t 2 ]; then printf '\033[1m==> %s\033[0m\n' "$*" >&2; else printf '==> %s\n' "$*" >&2; fi
}
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

missing_apt() {
    local pkg out=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || out+=("$pkg")
    done
    printf '%s\n' "${out[@]}"
}

apt_install() {
    local need
    mapfile -t need < <(missing_apt "$@" | sed '/^$/d')
    [ ${#need[@]} -eq 0 ] && return 0
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null && sudo -n true 2>/dev/null \
            || die "missing Debian packages: ${need[*]} (install them: sudo apt-get install ${need[*]})"
        sudo=(sudo -n)
    fi
    say "installing Debian packages: ${need[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
}

check_python() {
    command -v "$PYTHON" >/dev/null || apt_install python3
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PYTHON is $("$PYTHON" --version 2>&1); Python 3.11 or newer is needed"
    if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
        apt_install python3-venv
    fi
}

# make_venv EXTRAS: create .venv and install the package (editable) with pinned versions.
# Reinstalls only when pyproject.toml, constraints.txt or the extras changed.
make_venv() {
    local extras=$1
    check_python
    local stamp_want
    stamp_want="$("$PYTHON" --version 2>&1) extras=$extras $(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.stamp" 2>/dev/null)" = "$stamp_want" ]; then
        return 0
    fi
    say "preparing $VENV ($extras)"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    local spec=. log=$VENV/pip.log
    [ -n "$extras" ] && spec=".[$extras]"
    if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip \
           && "$VENV/bin/python" -m pip install --disable-pip-version-check \
                -c constraints.txt -e "$spec"; } >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "pip could not install the packages (full log: $log)"
    fi
    printf '%s' "$stamp_want" > "$VENV/.stamp"
}

# kernel_has_vlans: can a VLAN be made on a veth here? (in a throwaway namespace; needs root)
kernel_has_vlans() {
    local ns=appliance-vlan-probe-$$ status=1
    ip netns add "$ns" 2>/dev/null || return 1
    if ip -n "$ns" link add v0 type veth peer name v1 2>/dev/null \
        && ip -n "$ns" link add link v0 name v0.2 type vlan id 2 2>/dev/null; then
        status=0
    fi
    ip netns del "$ns"
    return $status
}

# prepare_vlan_vm: on a root x86_64 machine whose kernel lacks 802.1Q, install qemu and fetch
# Debian's kernel and busybox into .cache/vm for tests/net/test_vlan_vm.py.
prepare_vlan_vm() {
    [ "$(id -u)" -eq 0 ] && [ "$(uname -m)" = x86_64 ] || return 0
    kernel_has_vlans && return 0
    apt_install "${VLAN_VM_APT_PACKAGES[@]}"
    say "this kernel has no 802.1Q: preparing the VM for the VLAN tests"
    "$VENV/bin/python" -m tests.net.vm fetch || die "cannot prepare the VLAN test VM"
}

cmd_run() {
    make_venv ""
    local state
    state=$("$VENV/bin/python" -c \
        'from appliance.runtime.statedir import resolve_state_dir; print(resolve_state_dir(""))')
    say "starting the service on the embedded default config (Ctrl-C stops it)"
    say "first operator's user name and password: $state/first-operator.txt" \
        "(made on first start while the config has no [[operators]])"
    exec "$VENV/bin/appliance" run "$@"
}

cmd_image() {
    [ "$(id -u)" -eq 0 ] || die "./build.sh image must run as root (try: sudo ./build.sh image $*)"
    exec "$ROOT/image/build.sh" "$@"
}

cmd_test() {
    apt_install "${TEST_APT_PACKAGES[@]}"
    [ "$(id -u)" -ne 0 ] || apt_install "${IMAGE_APT_PACKAGES[@]}"
    make_venv test
    prepare_vlan_vm
    local status=0
    say "ruff"
    "$VENV/bin/ruff" check appliance tests bench || status=1
    "$VENV/bin/ruff" format --check appliance tests bench || status=1
    say "mypy"
    "$VENV/bin/mypy" || status=1
    say "pytest"
    "$VENV/bin/pytest" "$@" || status=1
    [ $status -eq 0 ] || die "tests failed"
    say "all checks passed"
}

case "${1:-}" in
    run) shift; cmd_run "$@" ;;
    test) shift; cmd_test "$@" ;;
    image) shift; cmd_image "$@" ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
