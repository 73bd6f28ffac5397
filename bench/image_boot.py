"""Image benchmark: build time and size of both images, boot-to-READY time under qemu.

Builds the amd64 and arm64 images with ``./build.sh image`` (or takes them from
``--images DIR``), then boots each ``--boots`` times on a fresh card 512 MiB larger than the
image (so every boot is a first boot: the data partition grows, the TLS certificate and first
operator are made) under software emulation, and reports for each: the kernel handing over to
the initramfs, ``READY`` (the console banner ordered after appliance.service, a Type=notify
unit), and the first HTTPS ``/healthz`` 200 through the forwarded port; seconds since qemu
started. Emulation (no KVM here) makes these many times slower than a Raspberry Pi 4.

    sudo .venv/bin/python bench/image_boot.py [--arch amd64 arm64] [--images DIR] [--boots 2]
"""

from __future__ import annotations

import argparse
import http.client
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.image.vm import Boot, copy_disk, missing_for  # noqa: E402

READY = r"appliance\.service is ready \(running\)"
KERNEL_DONE = r"Run /init as init process"


def build(arch: str, out: Path) -> tuple[Path, float]:
    start = time.monotonic()
    subprocess.run([str(ROOT / "build.sh"), "image", "--arch", arch, "--out", str(out)], check=True)
    return out / f"appliance-{arch}.img", time.monotonic() - start


def used_mib(image: Path) -> float:
    """Bytes the sparse image really holds (what a flasher writes), in MiB."""
    return image.stat().st_blocks * 512 / 2**20


def zstd_mib(image: Path) -> float:
    result = subprocess.run(
        ["zstd", "-q", "-c", "-T0", "-12", str(image)], capture_output=True, check=True
    )
    return len(result.stdout) / 2**20


def healthz(port: int, timeout: float) -> float:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the box's own first-start certificate
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return time.monotonic()
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("no /healthz 200")
        time.sleep(0.5)


def boot_once(arch: str, image: Path, work: Path) -> tuple[float, float, float]:
    card = copy_disk(image, work / "card.img", grow_mib=512)
    vm = Boot(arch, card, work)
    vm.start()
    try:
        _, kernel = vm.wait_for(KERNEL_DONE, 300)
        _, ready = vm.wait_for(READY, 900)
        https = healthz(vm.https_port, 300) - vm.started
    finally:
        vm.power_off()
        card.unlink()
    return kernel, ready, https


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["amd64", "arm64"])
    parser.add_argument("--images", type=Path, help="take appliance-ARCH.img from here")
    parser.add_argument("--boots", type=int, default=2)
    args = parser.parse_args()
    rows: list[tuple[str, float, float, float, float, list[tuple[float, float, float]]]] = []
    with tempfile.TemporaryDirectory(prefix="image-bench-") as tmp:
        for arch in args.arch:
            missing = missing_for(arch)
            if missing:
                print(f"{arch}: cannot boot, missing {missing}", file=sys.stderr)
                return 1
            if args.images:
                image, seconds = args.images / f"appliance-{arch}.img", float("nan")
            else:
                image, seconds = build(arch, Path(tmp) / arch)
            boots = []
            for n in range(args.boots):
                work = Path(tmp) / f"{arch}-boot{n}"
                work.mkdir()
                boots.append(boot_once(arch, image, work))
                print(f"{arch} boot {n + 1}: kernel {boots[-1][0]:.1f} s, READY {boots[-1][1]:.1f}"
                      f" s, /healthz {boots[-1][2]:.1f} s", file=sys.stderr)  # fmt: skip
            rows.append((arch, seconds, image.stat().st_size / 2**20, used_mib(image),
                         zstd_mib(image), boots))  # fmt: skip
    print(f"\nimage build and boot ({args.boots} first boots each, qemu TCG, no KVM)")
    print(f"{'arch':6} {'build s':>8} {'image MiB':>10} {'data MiB':>9} {'zstd MiB':>9} "
          f"{'kernel s':>9} {'READY s':>8} {'/healthz s':>10}")  # fmt: skip
    for arch, seconds, size, used, packed, boots in rows:
        kernel = statistics.median(b[0] for b in boots)
        ready = statistics.median(b[1] for b in boots)
        https = statistics.median(b[2] for b in boots)
        print(f"{arch:6} {seconds:8.0f} {size:10.0f} {used:9.0f} {packed:9.0f} "
              f"{kernel:9.1f} {ready:8.1f} {https:10.1f}")  # fmt: skip
    if len(rows) == 2:
        readies = [statistics.median(b[1] for b in row[5]) for row in rows]
        print(f"{rows[1][0]}/{rows[0][0]} ratio: build {rows[1][1] / rows[0][1]:.2f}x, "
              f"READY {readies[1] / readies[0]:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
