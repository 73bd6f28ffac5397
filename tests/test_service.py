"""The service process: start, readiness, graceful and bounded shutdown, startup failures."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.runtime.health import Health
from appliance.runtime.subsystem import Subsystem
from appliance.service import EXIT_FAILURE, Service
from appliance.web.tls import fingerprint
from tests.conftest import NotifyListener, ServiceProcess

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_ready_then_graceful_stop(
    make_config: Callable[..., Path],
    notify_socket: NotifyListener,
    run_service: Callable[..., ServiceProcess],
    tmp_path: Path,
    signum: int,
) -> None:
    config = make_config()
    service = run_service(config, {"NOTIFY_SOCKET": notify_socket.path})
    ready = notify_socket.wait_for("READY", "1", timeout=15)
    assert ready.fields["STATUS"] == "Serving: 5 components ok"
    service.wait_log("call-takers' page: https://127.0.0.1:")
    sent = time.monotonic()
    service.signal(signum)
    assert service.wait(timeout=15) == 0
    assert time.monotonic() - sent < 5
    stopping = notify_socket.wait_for("STOPPING", "1")
    assert stopping.fields["STATUS"] == f"Stopping ({signal.Signals(signum).name})"
    assert "stopped (exit status 0)" in service.log
    state = tmp_path / "state"
    assert state.stat().st_mode & 0o777 == 0o700
    assert (state / "tls" / "web.key").stat().st_mode & 0o777 == 0o600


def test_certificate_is_kept_across_restarts(
    make_config: Callable[..., Path],
    notify_socket: NotifyListener,
    run_service: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    config = make_config()
    first = run_service(config, {"NOTIFY_SOCKET": notify_socket.path})
    notify_socket.wait_for("READY", "1", timeout=15)
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    cert = tmp_path / "state" / "tls" / "web.crt"
    before = fingerprint(cert)
    second = run_service(config)
    second.wait_log("ready")
    assert fingerprint(cert) == before
    assert "made a self-signed certificate" in first.log
    assert "made a self-signed certificate" not in second.log


def test_busy_port_fails_start_clearly(
    make_config: Callable[..., Path],
    notify_socket: NotifyListener,
    run_service: Callable[..., ServiceProcess],
) -> None:
    config_path = make_config()
    port = load_config(config_path).web.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        service = run_service(config_path, {"NOTIFY_SOCKET": notify_socket.path})
        assert service.wait(timeout=15) == EXIT_FAILURE
    assert "cannot start web:" in service.log
    assert "address already in use" in service.log
    assert "Traceback" not in service.log
    assert not any("READY" in m.fields for m in notify_socket.snapshot())
    assert notify_socket.wait_for("STOPPING", "1").fields["STATUS"] == "Stopping (startup failed)"


def test_invalid_config_exits_2_with_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[web]\nport = 0\n[sip]\nt1 = 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}:2: [web] port: expected a value from 1 to 65535, found 0",
        f"{path}:4: [sip] t1: expected a value from 100 to 5000 ms, found 1",
        f"{path}: not started, 2 problem(s)",
    ]


def test_logs_under_journald(make_config: Callable[..., Path], tmp_path: Path) -> None:
    """With JOURNAL_STREAM naming stderr: priority prefixes and no timestamps."""
    read_end, write_end = os.pipe()
    st = os.fstat(write_end)
    env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "run", "--config", str(make_config())],
        stderr=write_end,
        env=env,
    )
    os.close(write_end)
    output = b""
    with os.fdopen(read_end, "rb") as stream:
        deadline = time.monotonic() + 15
        while b"call-takers' page" not in output and time.monotonic() < deadline:
            chunk = stream.read1(4096)
            if not chunk:
                break
            output += chunk
        proc.send_signal(signal.SIGTERM)
        output += stream.read()
    assert proc.wait(timeout=15) == 0
    lines = output.decode().splitlines()
    assert lines, "no log output"
    assert all(line.startswith(("<6>", "<4>", "<3>", "<7>")) for line in lines), lines
    assert "<6>appliance.service: stopped (exit status 0)" in lines


class RecordingSubsystem(Subsystem):
    """Records start/stop order; may fail to start or hang when stopping."""

    def __init__(
        self,
        name: str,
        health: Health,
        order: list[str],
        *,
        fail_start: bool = False,
        hang_stop: bool = False,
    ) -> None:
        super().__init__(name, health)
        self.order = order
        self.fail_start = fail_start
        self.hang_stop = hang_stop

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.order.append(f"start {self.name}")
        self.health.ok()

    async def stop(self) -> None:
        self.order.append(f"stop {self.name}")
        if self.hang_stop:
            await asyncio.sleep(3600)


async def test_stop_order_is_reverse_and_bounded(make_config: Callable[..., Path]) -> None:
    config = load_config(make_config(service={"shutdown_timeout": 1.0}))
    service = Service(config)
    order: list[str] = []
    build = service.build
    service.build = lambda: [  # type: ignore[method-assign]
        *build(),
        RecordingSubsystem("a", service.health, order),
        RecordingSubsystem("b", service.health, order, hang_stop=True),
        RecordingSubsystem("c", service.health, order),
    ]
    task = asyncio.get_running_loop().create_task(service.run())
    while not service.health.snapshot().ready:  # noqa: ASYNC110 - polling the health model
        await asyncio.sleep(0.02)
    started = time.monotonic()
    service.request_stop("test")
    assert await asyncio.wait_for(task, 10) == 0
    assert time.monotonic() - started < 2.0
    assert order == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]


async def test_start_failure_stops_what_started(make_config: Callable[..., Path]) -> None:
    config = load_config(make_config())
    service = Service(config)
    order: list[str] = []
    build = service.build
    service.build = lambda: [  # type: ignore[method-assign]
        *build(),
        RecordingSubsystem("a", service.health, order),
        RecordingSubsystem("b", service.health, order, fail_start=True),
        RecordingSubsystem("c", service.health, order),
    ]
    assert await asyncio.wait_for(service.run(), 10) == EXIT_FAILURE
    assert order == ["start a", "stop a"]
    # The web server was stopped too: its port is free again.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", config.web.port))
