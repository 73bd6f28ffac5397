"""Boot a built appliance disk image under qemu (software emulation) and watch its console.

The kernel and initramfs are read from the image's own boot partition (``vmlinuz`` and
``initrd.img``, kept there by firmware-hooks/bootfiles) and booted directly; the disk is the
image itself, so the root, the data partition, fstab, the initramfs and every unit are the
image's. amd64 boots on ``qemu-system-x86_64`` with an emulated i6300esb watchdog; arm64 on
``qemu-system-aarch64 -M virt`` (the Raspberry Pi firmware path cannot run in qemu).
Networking is qemu's user mode: the guest's HTTPS port is forwarded to a loopback port.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

BOOT_OFFSET = 4 * 1024 * 1024
"""Byte offset of the boot partition (image/build.sh: FIRST_MIB)."""
ROOT_ARG = "root=PARTUUID=5afe7e57-02"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
"""Colour and cursor sequences of systemd's status lines."""


@dataclass(frozen=True)
class Machine:
    """What qemu needs for one architecture."""

    qemu: str
    console: str
    args: tuple[str, ...]
    package: str


MACHINES = {
    "amd64": Machine(
        "qemu-system-x86_64",
        "ttyS0",
        ("-machine", "pc", "-cpu", "qemu64", "-device", "i6300esb", "-action", "watchdog=reset"),
        "qemu-system-x86",
    ),
    "arm64": Machine(
        "qemu-system-aarch64",
        "ttyAMA0",
        ("-machine", "virt", "-cpu", "cortex-a72"),
        "qemu-system-arm",
    ),
}


def missing_for(arch: str) -> str | None:
    """What this machine lacks to boot ``arch`` images, or None."""
    machine = MACHINES[arch]
    if shutil.which(machine.qemu) is None:
        return f"{machine.qemu} (Debian: {machine.package})"
    if shutil.which("mcopy") is None:
        return "mcopy (Debian: mtools)"
    return None


def extract_boot_files(image: Path, into: Path) -> tuple[Path, Path]:
    """Copy ``vmlinuz`` and ``initrd.img`` out of the image's FAT boot partition."""
    into.mkdir(parents=True, exist_ok=True)
    out = []
    for name in ("vmlinuz", "initrd.img"):
        target = into / name
        subprocess.run(
            ["mcopy", "-o", "-n", "-i", f"{image}@@{BOOT_OFFSET}", f"::/{name}", str(target)],
            check=True,
            capture_output=True,
            env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
            timeout=60,
        )
        out.append(target)
    return out[0], out[1]


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Boot:
    """One running VM: its console log and the loopback port forwarded to its HTTPS port."""

    arch: str
    disk: Path
    workdir: Path
    https_port: int = field(default_factory=free_port)
    kernel_args: str = ""
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0

    @property
    def log(self) -> Path:
        return self.workdir / "console.log"

    def start(self) -> None:
        """Start qemu; returns at once (the console fills ``log``)."""
        machine = MACHINES[self.arch]
        kernel, initrd = extract_boot_files(self.disk, self.workdir / "boot")
        append = (
            f"{ROOT_ARG} ro rootwait console={machine.console},115200 panic=10 "
            f"systemd.show_status=1 {self.kernel_args}"
        ).strip()
        args = [
            machine.qemu,
            *machine.args,
            "-accel",
            "tcg,thread=multi",
            "-m",
            "1024",
            "-smp",
            "2",
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            f"file:{self.log}",
            "-kernel",
            str(kernel),
            "-initrd",
            str(initrd),
            "-append",
            append,
            "-drive",
            f"if=none,id=disk,format=raw,file={self.disk}",
            "-device",
            "virtio-blk-pci,drive=disk",
            "-netdev",
            f"user,id=lan,hostfwd=tcp:127.0.0.1:{self.https_port}-:8443",
            "-device",
            "virtio-net-pci,netdev=lan",
        ]
        self.log.write_bytes(b"")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def console(self) -> str:
        """Everything the VM printed on its serial console so far."""
        text = self.log.read_bytes().decode("utf-8", errors="replace")
        return ANSI.sub("", text).replace("\r", "")

    def wait_for(self, pattern: str, timeout: float) -> tuple[re.Match[str], float]:
        """Wait until ``pattern`` appears on the console: the match and seconds since start."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.console())
            if found:
                return found, time.monotonic() - self.started
            if self.process is not None and self.process.poll() is not None:
                err = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                raise AssertionError(
                    f"qemu exited ({self.process.returncode}) before {pattern!r}: {err}\n"
                    + self.tail()
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {pattern!r} on the console within {timeout:.0f} s\n" + self.tail()
                )
            time.sleep(0.25)

    def tail(self, lines: int = 60) -> str:
        """The console's last lines, for failure messages."""
        return "\n".join(self.console().splitlines()[-lines:])

    def power_off(self) -> None:
        """Pull the plug (SIGKILL): the read-only root and the data partition must survive it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)


def copy_disk(image: Path, target: Path, grow_mib: int = 0) -> Path:
    """A sparse copy of ``image`` (the card), optionally larger than the image (a bigger card)."""
    subprocess.run(["cp", "--sparse=always", str(image), str(target)], check=True, timeout=300)
    if grow_mib:
        with target.open("r+b") as f:
            f.truncate(target.stat().st_size + grow_mib * 1024 * 1024)
    return target
