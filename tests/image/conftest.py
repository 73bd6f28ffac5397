"""Images built once per test session by the real command, ``./build.sh image``."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
FIGURES: list[str] = []
"""Build and boot figures of this session, printed in the terminal summary."""


@dataclass(frozen=True)
class Built:
    """One finished build: the image, its manifests, the time it took and what it printed."""

    arch: str
    image: Path
    seconds: float
    output: str

    @property
    def packages(self) -> Path:
        return self.image.with_suffix(".packages")

    @property
    def files(self) -> Path:
        return self.image.with_suffix(".files")


def cannot_build() -> str | None:
    """Why images cannot be built on this machine, or None."""
    if os.geteuid() != 0:
        return "building an image needs root (mmdebstrap in root mode, file owners)"
    if shutil.which("apt-get") is None or not Path("/etc/debian_version").exists():
        return "building an image needs a Debian host (apt, mmdebstrap)"
    return None


@pytest.fixture(scope="session")
def build_image(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Built]:
    """``build_image(arch, name)``: build (once per session and name) and return the result.

    ``APPLIANCE_TEST_IMAGES=DIR`` reuses ``DIR/<name>/appliance-<arch>.img`` when present.
    """
    reason = cannot_build()
    if reason:
        pytest.skip(reason)
    cache: dict[tuple[str, str], Built] = {}
    reuse = os.environ.get("APPLIANCE_TEST_IMAGES")

    def build(arch: str, name: str = "a") -> Built:
        if (arch, name) in cache:
            return cache[(arch, name)]
        out = Path(reuse) / name if reuse else tmp_path_factory.mktemp(f"image-{name}")
        image = out / f"appliance-{arch}.img"
        if reuse and image.exists():
            built = Built(arch, image, 0.0, "(reused)")
        else:
            start = time.monotonic()
            result = subprocess.run(
                [str(CHECKOUT / "build.sh"), "image", "--arch", arch, "--out", str(out)],
                capture_output=True,
                text=True,
                check=False,
                timeout=40 * 60,
            )
            assert result.returncode == 0, result.stderr[-6000:]
            built = Built(arch, image, time.monotonic() - start, result.stderr)
            size = image.stat()
            FIGURES.append(
                f"{arch} image {name}: built in {built.seconds:.0f} s, "
                f"{size.st_size / 2**20:.0f} MiB, {size.st_blocks * 512 / 2**20:.0f} MiB of data"
            )
        cache[(arch, name)] = built
        return built

    return build


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The image figures (build times, sizes, boot-to-READY) at the end of the run."""
    if FIGURES:
        terminalreporter.section("appliance images")
        for line in FIGURES:
            terminalreporter.write_line(line)
