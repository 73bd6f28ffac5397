"""firmware-hooks/: the image's boot hooks, run for real against directories standing in for roots.

Each test builds a root under tmp_path and runs the POSIX sh scripts as image/build.sh and the
box's kernel hooks do. The expected values are the image layout's (MBR disk 0x5afe7e57, root on
partition 2) and the formats raspi-firmware's z50 hook reads and writes.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

HOOKS = Path(__file__).resolve().parents[2] / "firmware-hooks"
SCRIPTS = ("run", "install", "raspi-firmware", "watchdog", "bootfiles", "lib.sh")
ROOTPART = "PARTUUID=5afe7e57-02"

# What z50-raspi-firmware (raspi-firmware 1.20220830+ds-1) writes on a Pi 3 with CONSOLES=auto.
Z50_CMDLINE = (
    "console=tty0 console=ttyS1,115200 root=/dev/mmcblk0p2 rw fsck.repair=yes net.ifnames=0"
    "  rootwait\n"
)
Z50_CONFIG = """\
# Do not modify this file!
#
# It is automatically generated upon install or update of either the
# firmware or the Linux kernel.
#
# If you need to set boot-time parameters, do so via the
# /etc/default/raspi-firmware, /etc/default/raspi-firmware-custom or
# /etc/default/raspi-extra-cmdline files.

# Switch the CPU from ARMv7 into ARMv8 (aarch64) mode
arm_64bit=1

enable_uart=1
upstream_kernel=1

kernel=vmlinuz-6.1.0-28-arm64
# For details on the initramfs directive, see
# https://www.raspberrypi.org/forums/viewtopic.php?f=63&t=10532
initramfs initrd.img-6.1.0-28-arm64

# Inserted by /etc/default/raspi-firmware-custom
[pi4]
core_freq=360
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update(extra)
    return env


def _sh(
    script: Path, *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(script), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env if env is not None else _env(),
    )


def _hook(name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return _sh(HOOKS / name, *args)


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _root(tmp_path: Path, arch: str = "arm64") -> Path:
    root = tmp_path / "root"
    (root / "boot/firmware").mkdir(parents=True)
    for version, body in (("6.1.0-9", "old"), ("6.1.0-28", "new")):
        (root / f"boot/vmlinuz-{version}-{arch}").write_bytes(f"kernel {body}\n".encode() * 999)
        (root / f"boot/initrd.img-{version}-{arch}").write_bytes(f"initrd {body}\n".encode() * 99)
    status = root / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text(
        f"Package: dash\nStatus: install ok installed\nArchitecture: {arch}\n\n"
        f"Package: dpkg\nStatus: install ok installed\nArchitecture: {arch}\n"
        "Version: 1.21.22\n"
    )
    return root


def _tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every file and directory under root: path -> (mode, content hash)."""
    out: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        out[str(path.relative_to(root))] = (st.st_mode, digest)
    return out


def _sourced(defaults: Path, expr: str) -> str:
    """The value of a shell expression after sourcing defaults, as z50 sources it."""
    return subprocess.run(
        ["sh", "-c", f'. "$1"; {expr}', "sh", str(defaults)],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout


def _cmdline_words(path: Path) -> list[str]:
    text = path.read_text()
    assert text.count("\n") == 1 and text.endswith("\n"), repr(text)
    return text.split()


def test_arm64_root_gets_the_three_raspi_firmware_defaults(tmp_path: Path) -> None:
    """On arm64 the defaults z50 reads are written, and z50 would turn them into the wanted line.

    CONSOLES and ROOTPART are expanded the way z50 does (`console=` per word, `root=$ROOTPART`),
    CMA=0 suppresses the cma= that breaks a Pi 4, the extra cmdline is a bare `ro` (no comment:
    z50 pastes it into cmdline.txt) and config.txt gets the watchdog dtparam.
    """
    root = _root(tmp_path)
    _ok(_hook("raspi-firmware", root, "arm64"))
    defaults = root / "etc/default/raspi-firmware"
    assert "# Filesystem to mount on root." in defaults.read_text()  # Debian's shipped text
    assert _sourced(defaults, 'printf %s "$CMA"') == "0"
    assert _sourced(defaults, 'printf %s "$ROOTPART"') == ROOTPART
    z50_pre_cmdline = _sourced(
        defaults, 'for c in $CONSOLES; do printf " console=%s" "$c"; done; printf " root=$ROOTPART"'
    )
    assert z50_pre_cmdline.split() == [
        "console=tty1",
        "console=ttyS1,115200",
        f"root={ROOTPART}",
    ]
    assert (root / "etc/default/raspi-extra-cmdline").read_text() == "ro\n"
    custom = (root / "etc/default/raspi-firmware-custom").read_text().splitlines()
    settings = [line for line in custom if line and not line.startswith("#")]
    assert settings == ["dtparam=watchdog=on"]  # z50 writes enable_uart=1 itself


def test_existing_config_and_cmdline_get_the_settings_exactly_once(tmp_path: Path) -> None:
    """A box's z50-made config.txt and cmdline.txt carry the settings after one run, unchanged by
    a second: enable_uart stays single, the watchdog dtparam lands after [all] (not inside the
    trailing [pi4] section), the cmdline is one line with our consoles, our root, no tty0 and a
    final ro that overrides z50's rw.
    """
    root = _root(tmp_path)
    config = root / "boot/firmware/config.txt"
    cmdline = root / "boot/firmware/cmdline.txt"
    config.write_text(Z50_CONFIG)
    cmdline.write_text(Z50_CMDLINE)
    _ok(_hook("raspi-firmware", root, "arm64"))

    lines = [line.strip() for line in config.read_text().splitlines()]
    assert lines[: len(Z50_CONFIG.splitlines())] == Z50_CONFIG.splitlines()
    assert lines.count("enable_uart=1") == 1
    assert lines.count("dtparam=watchdog=on") == 1
    assert lines.index("[all]") > lines.index("[pi4]")
    assert lines.index("dtparam=watchdog=on") > lines.index("[all]")

    words = _cmdline_words(cmdline)
    assert [w for w in words if w.startswith("console=")] == [
        "console=tty1",
        "console=ttyS1,115200",
    ]
    assert [w for w in words if w.startswith("root=")] == [f"root={ROOTPART}"]
    assert [w for w in words if w in ("ro", "rw")][-1] == "ro"
    assert words.count("ro") == 1
    assert "rootwait" in words and "fsck.repair=yes" in words

    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (config, cmdline)}
    _ok(_hook("raspi-firmware", root, "arm64"))
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (config, cmdline)} == before


def test_cmdline_as_z50_writes_it_from_our_defaults_is_left_alone(tmp_path: Path) -> None:
    """The line z50 writes from our defaults (leading space, double space) already has every
    setting: it is not rewritten, so an update does not touch the boot partition needlessly.
    """
    root = _root(tmp_path)
    cmdline = root / "boot/firmware/cmdline.txt"
    z50_line = (
        f" console=tty1 console=ttyS1,115200 root={ROOTPART} rw fsck.repair=yes net.ifnames=0"
        "  rootwait ro\n"
    )
    cmdline.write_text(z50_line)
    _ok(_hook("raspi-firmware", root, "arm64"))
    assert cmdline.read_text() == z50_line


def test_cmdline_loses_cma_and_keeps_init_arguments_last(tmp_path: Path) -> None:
    """A cma= left by a chroot run (which breaks a Pi 4) is dropped, a missing root= is added
    after the consoles, and words after `--` (arguments for init) stay at the end.
    """
    root = _root(tmp_path)
    cmdline = root / "boot/firmware/cmdline.txt"
    cmdline.write_text("console=tty0 rw cma=64M rootwait\n-- single\n")
    _ok(_hook("raspi-firmware", root, "arm64"))
    assert _cmdline_words(cmdline) == [
        "console=tty1",
        "console=ttyS1,115200",
        f"root={ROOTPART}",
        "rw",
        "rootwait",
        "ro",
        "--",
        "single",
    ]


def test_amd64_root_raspi_firmware_does_nothing(tmp_path: Path) -> None:
    """On amd64 the Raspberry Pi hook says so and writes nothing, even where a config.txt exists."""
    root = _root(tmp_path, "amd64")
    config = root / "boot/firmware/config.txt"
    config.write_text(Z50_CONFIG)
    result = _ok(_hook("raspi-firmware", root, "amd64"))
    assert "nothing to do on amd64" in result.stdout
    assert not (root / "etc").exists()
    assert config.read_text() == Z50_CONFIG


def test_watchdog_drop_in(tmp_path: Path) -> None:
    """The systemd drop-in arms the hardware watchdog within bcm2835_wdt's 15 s limit."""
    root = _root(tmp_path)
    _ok(_hook("watchdog", root, "arm64"))
    conf = root / "etc/systemd/system.conf.d/50-appliance-watchdog.conf"
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(conf.read_text())
    assert dict(parser["Manager"]) == {"RuntimeWatchdogSec": "15s", "RebootWatchdogSec": "15s"}
    assert "15 s" in conf.read_text()  # the reason is given in the file


def test_bootfiles_copies_the_newest_kernel_by_version_order(tmp_path: Path) -> None:
    """6.1.0-28 is newer than 6.1.0-9 (version order; lexically -9 would win): its kernel and
    initramfs are copied byte for byte, and a second run leaves both files and mtimes alone.
    """
    root = _root(tmp_path, "amd64")
    names = [p.name for p in (root / "boot").glob("vmlinuz-*")]
    assert max(names) == "vmlinuz-6.1.0-9-amd64"  # what a lexical sort would pick
    _ok(_hook("bootfiles", root, "amd64"))
    fw = root / "boot/firmware"
    assert (fw / "vmlinuz").read_bytes() == (root / "boot/vmlinuz-6.1.0-28-amd64").read_bytes()
    assert (fw / "initrd.img").read_bytes() == (
        root / "boot/initrd.img-6.1.0-28-amd64"
    ).read_bytes()
    assert sorted(p.name for p in fw.iterdir()) == ["initrd.img", "vmlinuz"]  # no temp files
    mtimes = {p.name: p.stat().st_mtime_ns for p in fw.iterdir()}
    result = _ok(_hook("bootfiles", root, "amd64"))
    assert "already 6.1.0-28-amd64" in result.stdout
    assert {p.name: p.stat().st_mtime_ns for p in fw.iterdir()} == mtimes


def test_bootfiles_waits_for_the_newest_kernels_initramfs(tmp_path: Path) -> None:
    """A kernel whose initramfs is not built yet is not paired with an older initramfs: the
    fixed names stay as they were until initramfs-tools runs the hook again.
    """
    root = _root(tmp_path, "amd64")
    _ok(_hook("bootfiles", root, "amd64"))
    fw = root / "boot/firmware"
    before = _tree(fw)
    (root / "boot/vmlinuz-6.1.0-30-amd64").write_bytes(b"kernel 30\n")
    result = _ok(_hook("bootfiles", root, "amd64"))
    assert "initrd.img-6.1.0-30-amd64 is not built yet" in result.stdout
    assert _tree(fw) == before
    (root / "boot/initrd.img-6.1.0-30-amd64").write_bytes(b"initrd 30\n")
    _ok(_hook("bootfiles", root, "amd64"))
    assert (fw / "vmlinuz").read_bytes() == b"kernel 30\n"
    assert (fw / "initrd.img").read_bytes() == b"initrd 30\n"


def test_bootfiles_fails_clearly_when_the_boot_partition_is_no_directory(tmp_path: Path) -> None:
    """With /boot/firmware unusable (here a file where the mount point should be) the hook exits
    non-zero and tells the technician how to make the boot partition writable.
    """
    root = _root(tmp_path, "amd64")
    (root / "boot/firmware").rmdir()
    (root / "boot/firmware").write_text("not a mount point\n")
    result = _hook("bootfiles", root, "amd64")
    assert result.returncode != 0
    assert "is not a directory" in result.stderr
    assert "mount -o remount,rw /boot/firmware" in result.stderr
    assert (root / "boot/firmware").read_text() == "not a mount point\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to a 0555 directory regardless")
def test_bootfiles_fails_clearly_on_a_read_only_boot_directory(tmp_path: Path) -> None:
    """A /boot/firmware without write permission gives the same clear error and no partial file."""
    root = _root(tmp_path, "amd64")
    fw = root / "boot/firmware"
    fw.chmod(0o555)
    try:
        result = _hook("bootfiles", root, "amd64")
    finally:
        fw.chmod(0o755)
    assert result.returncode != 0
    assert "mount -o remount,rw /boot/firmware" in result.stderr
    assert list(fw.iterdir()) == []


def test_bootfiles_fails_clearly_on_a_read_only_mount(tmp_path: Path) -> None:
    """A /boot/firmware mounted read-only (as on the box; root cannot write there either) gives
    the clear error and leaves no file behind. Runs in a private mount namespace, as root.
    """
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private read-only bind mount")
    root = _root(tmp_path, "amd64")
    fw = root / "boot/firmware"
    script = (
        'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" || exit 77\n'
        'exec sh "$2" "$3" amd64\n'
    )
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(fw), str(HOOKS / "bootfiles"), str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=_env(),
    )
    if result.returncode == 77:
        pytest.skip(f"no read-only bind mount here: {result.stderr.strip()}")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "mount -o remount,rw /boot/firmware" in result.stderr
    assert list(fw.iterdir()) == []


def test_install_twice_gives_an_identical_tree(tmp_path: Path) -> None:
    """install puts the hooks and the three zz-appliance kernel hooks in place and runs them; a
    second install changes no path, mode or byte (nor any mtime).
    """
    root = _root(tmp_path)
    _ok(_hook("install", root, "arm64"))
    lib = root / "usr/lib/appliance/firmware-hooks"
    for name in ("run", "raspi-firmware", "watchdog", "bootfiles"):
        assert (lib / name).read_bytes() == (HOOKS / name).read_bytes()
        assert os.access(lib / name, os.X_OK)
    for hook_dir in ("etc/kernel/postinst.d", "etc/kernel/postrm.d", "etc/initramfs/post-update.d"):
        zz = root / hook_dir / "zz-appliance"
        assert os.access(zz, os.X_OK)
        assert "/usr/lib/appliance/firmware-hooks/run" in zz.read_text()
    assert (root / "boot/firmware/vmlinuz").exists()
    assert (root / "etc/default/raspi-firmware").exists()

    first = _tree(root)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    _ok(_hook("install", root, "arm64"))
    assert _tree(root) == first
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == mtimes


def test_kernel_postinst_invocation_form(tmp_path: Path) -> None:
    """The installed hook accepts dpkg's `zz-appliance VERSION IMAGE` call with no options: the
    root comes from APPLIANCE_ROOT and the arch from the root's dpkg status, and the new kernel
    reaches the fixed names. The initramfs post-update.d form works the same way.
    """
    root = _root(tmp_path, "amd64")
    _ok(_hook("install", root, "amd64"))
    (root / "boot/vmlinuz-6.1.0-30-amd64").write_bytes(b"kernel 30\n")
    (root / "boot/initrd.img-6.1.0-30-amd64").write_bytes(b"initrd 30\n")
    env = _env(APPLIANCE_ROOT=str(root))
    result = subprocess.run(
        [
            str(root / "etc/kernel/postinst.d/zz-appliance"),
            "6.1.0-30-amd64",
            "/boot/vmlinuz-6.1.0-30-amd64",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )
    _ok(result)
    assert "(amd64), for kernel 6.1.0-30-amd64" in result.stderr  # stdout goes to stderr
    assert (root / "boot/firmware/vmlinuz").read_bytes() == b"kernel 30\n"
    assert (root / "boot/firmware/initrd.img").read_bytes() == b"initrd 30\n"

    (root / "boot/initrd.img-6.1.0-30-amd64").write_bytes(b"initrd 30, updated\n")
    _ok(
        _sh(
            root / "etc/initramfs/post-update.d/zz-appliance",
            "6.1.0-30-amd64",
            "/boot/initrd.img-6.1.0-30-amd64",
            env=env,
        )
    )
    assert (root / "boot/firmware/initrd.img").read_bytes() == b"initrd 30, updated\n"


def test_run_needs_an_arch_it_can_tell(tmp_path: Path) -> None:
    """A root other than / without --arch and without a dpkg status is refused, not guessed."""
    root = tmp_path / "bare"
    root.mkdir()
    result = _hook("run", "--root", root)
    assert result.returncode == 2
    assert "pass --arch" in result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_parse_as_posix_sh(script: str) -> None:
    """Every script parses with sh -n, and passes shellcheck where it is installed."""
    _ok(
        subprocess.run(
            ["sh", "-n", str(HOOKS / script)],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    )
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian: shellcheck)")
    _ok(
        subprocess.run(
            ["shellcheck", "-x", "-s", "sh", str(HOOKS / script)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd=HOOKS,
        )
    )
