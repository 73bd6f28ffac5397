"""Run a command in a qemu VM booted on Debian's own kernel, with this machine's root.

Some kernels (this project's CI machines among them) are built without 802.1Q VLAN support.
The VLAN tests then run in a small VM: Debian's ``linux-image-amd64`` kernel (8021q is a module
there) boots under qemu (TCG: no usable KVM is assumed) with an initramfs made here from a
static busybox and the few modules needed, and mounts the host's root read-only over
virtio-9p, with tmpfs on /tmp and /run; the command runs in a chroot of it, so it uses this
very checkout and ``.venv``.

``python -m tests.net.vm fetch`` (run by ``./build.sh test`` when the kernel lacks 802.1Q)
downloads the kernel and ``busybox-static`` packages with ``apt-get download`` from the
configured Debian mirror and keeps only what the VM needs in ``.cache/vm`` (about 10 MB).
"""

from __future__ import annotations

import base64
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "vm"
MODULES = ["virtio_pci", "9pnet_virtio", "9p", "8021q", "veth"]
"""Modules the VM loads (their dependencies are found and loaded first)."""
QEMU = "qemu-system-x86_64"
KERNEL_PACKAGE = "linux-image-amd64"
BUSYBOX_PACKAGE = "busybox-static"


@dataclass(frozen=True)
class VmParts:
    """The kernel, its modules in load order, and busybox, from Debian packages."""

    kernel: Path
    modules: list[Path]
    busybox: Path


def vm_parts(cache: Path = CACHE) -> VmParts | str:
    """The parts in ``cache``, or a sentence saying what is missing."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} (Debian: qemu-system-x86)"
    order = cache / "modules.order"
    kernel, busybox = cache / "vmlinuz", cache / "busybox"
    if not (order.exists() and kernel.exists() and busybox.exists()):
        return f"the VM kernel and busybox in {cache} (python -m tests.net.vm fetch)"
    modules = [cache / "modules" / name for name in order.read_text().split()]
    return VmParts(kernel, modules, busybox)


def module_order(available: dict[str, Path], wanted: list[str]) -> list[Path]:
    """Module files in load order, dependencies first (from each .ko's ``depends=`` modinfo)."""
    order: list[Path] = []

    def visit(name: str) -> None:
        path = available.get(name)
        if path is None:
            raise LookupError(f"kernel module {name} is not in the kernel package")
        if path in order:
            return
        found = re.search(rb"depends=([A-Za-z0-9_,\-]*)\x00", path.read_bytes())
        for dependency in found.group(1).decode().split(",") if found else []:
            if dependency:
                visit(dependency)
        order.append(path)

    for name in wanted:
        visit(name)
    return order


def _run(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _kernel_package() -> str:
    """The versioned package ``linux-image-amd64`` depends on (``linux-image-6.1.0-N-amd64``)."""
    depends = _run("apt-cache", "depends", "--important", KERNEL_PACKAGE)
    found = re.search(r"Depends: (linux-image-\S+)", depends)
    if found is None:
        raise RuntimeError(f"apt-cache depends {KERNEL_PACKAGE} names no kernel:\n{depends}")
    return found.group(1)


def _download(packages: list[str], into: Path) -> list[Path]:
    """``apt-get download`` the packages (refreshing the package lists once if needed)."""
    command = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", *packages]
    try:
        _run(*command, cwd=into)
    except RuntimeError:
        _run("apt-get", "update", "-qq")
        _run(*command, cwd=into)
    return [next(into.glob(f"{package}_*.deb")) for package in packages]


def _unpack(deb: Path, into: Path, *patterns: str) -> None:
    """Extract the members matching ``patterns`` from a .deb's data (dpkg-deb(1), tar(1))."""
    data = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert data.stdout is not None
    with data.stdout:
        tar = subprocess.run(
            ["tar", "-x", "-C", str(into), "--wildcards", *patterns],
            stdin=data.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
    if data.wait() != 0 or tar.returncode != 0:
        raise RuntimeError(f"cannot unpack {deb.name}: {tar.stderr.strip()}")


def fetch(cache: Path = CACHE) -> VmParts:
    """Download and keep what the VM needs (nothing when ``cache`` has it already)."""
    parts = vm_parts(cache)
    if isinstance(parts, VmParts):
        return parts
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache.parent, prefix="vm-fetch-") as temp:
        work = Path(temp)
        try:
            kernel_package = _kernel_package()
        except RuntimeError:
            _run("apt-get", "update", "-qq")
            kernel_package = _kernel_package()
        kernel_deb, busybox_deb = _download([kernel_package, BUSYBOX_PACKAGE], work)
        unpacked = work / "unpacked"
        unpacked.mkdir()
        _unpack(kernel_deb, unpacked, "./boot/vmlinuz-*", "*.ko")
        _unpack(busybox_deb, unpacked, "./bin/busybox")
        available = {p.name.removesuffix(".ko"): p for p in unpacked.rglob("*.ko")}
        modules = module_order(available, MODULES)
        staged = work / "vm"
        (staged / "modules").mkdir(parents=True)
        for module in modules:
            shutil.copy2(module, staged / "modules" / module.name)
        (staged / "modules.order").write_text("".join(f"{m.name}\n" for m in modules))
        shutil.copy2(next((unpacked / "boot").glob("vmlinuz-*")), staged / "vmlinuz")
        shutil.copy2(unpacked / "bin" / "busybox", staged / "busybox")
        (staged / "packages").write_text(f"{kernel_deb.name}\n{busybox_deb.name}\n")
        shutil.rmtree(cache, ignore_errors=True)
        staged.rename(cache)
    parts = vm_parts(cache)
    if not isinstance(parts, VmParts):
        raise RuntimeError(parts)
    return parts


def _cpio(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A newc-format cpio archive (the initramfs format, kernel's ramfs-rootfs-initramfs)."""
    out = bytearray()

    def header(inode: int, name: str, mode: int, size: int) -> bytes:
        encoded = name.encode() + b"\0"
        fields = (inode, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(encoded), 0)
        head = b"070701" + b"".join(b"%08X" % value for value in fields) + encoded
        return head + b"\0" * (-len(head) % 4)

    for inode, (name, mode, data) in enumerate(entries, start=1):
        out += header(inode, name, mode, len(data)) + data + b"\0" * (-len(data) % 4)
    out += header(0, "TRAILER!!!", 0, 0)
    return bytes(out)


# cache=loose lets the guest cache the read-only host tree (v9fs: Documentation/filesystems/
# 9p.rst); without it every Python import pays round trips and the tests run ~5x slower.
INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /host
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for module in {modules}; do insmod /modules/$module || echo "insmod $module failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose host /host
for dir in proc sys dev; do mount --bind /$dir /host/$dir; done
mount -t tmpfs tmp /host/tmp
mount -t tmpfs run /host/run
echo "VM-COMMAND-START"
chroot /host /bin/sh -c "$(sed 's/.*appliance_cmd=//' /proc/cmdline | base64 -d)"
echo "VM-EXIT-STATUS $?"
poweroff -f
"""


def run_in_vm(parts: VmParts, command: str, workdir: Path, timeout: float) -> tuple[int, str]:
    """Boot, run ``command`` (sh) in the chroot, power off; its exit status and the console.

    The status is -1 when the VM never reported one (it did not boot, or it timed out).
    """
    entries = [
        ("bin", stat.S_IFDIR | 0o755, b""),
        ("modules", stat.S_IFDIR | 0o755, b""),
        ("bin/busybox", stat.S_IFREG | 0o755, parts.busybox.read_bytes()),
    ]
    entries += [(f"modules/{m.name}", stat.S_IFREG | 0o644, m.read_bytes()) for m in parts.modules]
    init = INIT.format(modules=" ".join(m.name for m in parts.modules))
    entries.append(("init", stat.S_IFREG | 0o755, init.encode()))
    initrd = workdir / "initrd.cpio"
    initrd.write_bytes(_cpio(entries))
    encoded = base64.b64encode(command.encode()).decode()
    args = [
        QEMU,
        "-accel",
        "tcg,thread=multi",
        "-cpu",
        "max",
        "-m",
        "1024",
        "-smp",
        "2",
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "stdio",
        "-net",
        "none",
        "-kernel",
        str(parts.kernel),
        "-initrd",
        str(initrd),
        "-append",
        f"console=ttyS0 rdinit=/init panic=-1 quiet appliance_cmd={encoded}",
        "-virtfs",
        "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
    ]
    try:
        result = subprocess.run(
            args,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        return -1, f"{out}\n(the VM did not finish within {timeout:.0f} s)"
    console = result.stdout + result.stderr
    found = re.search(r"VM-EXIT-STATUS (\d+)", console)
    return (int(found.group(1)) if found else -1), console


def main(argv: list[str]) -> int:
    """``python -m tests.net.vm fetch``: fill the cache."""
    if argv != ["fetch"]:
        print("usage: python -m tests.net.vm fetch", file=sys.stderr)
        return 2
    try:
        parts = fetch()
    except (RuntimeError, LookupError, OSError, StopIteration) as exc:
        print(f"cannot prepare the VLAN test VM: {exc}", file=sys.stderr)
        return 1
    print(f"VLAN test VM: {parts.kernel} with {len(parts.modules)} modules, {parts.busybox}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
