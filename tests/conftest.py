"""Shared test helpers: a real sd_notify socket, free ports, configs, the service process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from appliance.runtime import eventloop


@dataclass(frozen=True)
class NotifyMessage:
    """One sd_notify datagram as systemd would receive it."""

    at: float
    fields: dict[str, str]


class NotifyListener:
    """A real AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="notify-")  # short path: sun_path is 108 bytes
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[NotifyMessage] = []
        self._lock = threading.Lock()
        self._running = True
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while self._running:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            with self._lock:
                self.messages.append(NotifyMessage(time.monotonic(), fields))

    def snapshot(self) -> list[NotifyMessage]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, key: str, value: str | None = None, timeout: float = 10.0) -> NotifyMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.snapshot():
                if key in message.fields and (value is None or message.fields[key] == value):
                    return message
            time.sleep(0.01)
        raise AssertionError(f"no {key}={value or '*'} within {timeout} s: {self.snapshot()}")

    def pings(self, since: float = 0.0) -> list[float]:
        return [m.at for m in self.snapshot() if m.fields.get("WATCHDOG") == "1" and m.at >= since]

    def close(self) -> None:
        self._running = False
        self.sock.close()
        self._thread.join(timeout=1)
        shutil.rmtree(self.dir, ignore_errors=True)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Async tests run on the event loop the service runs on (``appliance.runtime.eventloop``)."""
    return {"uvloop": eventloop.new_event_loop}


@pytest.fixture
def notify_socket() -> Iterator[NotifyListener]:
    listener = NotifyListener()
    yield listener
    listener.close()


_HANDED_OUT: set[int] = set()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on loopback right now (TCP by default), for UDP and TCP alike.

    The kernel may hand the same ephemeral port to two binds in a row once the
    first socket is closed, so a port this process has handed out before is
    never handed out again: one config cannot get one port for two services.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port in _HANDED_OUT or not _bindable(port):
            continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free loopback port found in 100 tries")


def _bindable(port: int) -> bool:
    """Whether ``port`` can be bound on loopback for both TCP and UDP now."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def write_config(path: Path, state_dir: Path, **tables: dict[str, Any]) -> Path:
    """A config on loopback with free ports and ``state_dir``; ``tables`` override keys."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment("test configuration"))
    base: dict[str, dict[str, Any]] = {
        "service": {"state_dir": str(state_dir), "name": "test-box"},
        "web": {"addresses": ["127.0.0.1"], "port": free_port()},
        "sip": {
            "addresses": ["127.0.0.1"],
            "udp_port": free_port(socket.SOCK_DGRAM),
            "tcp_port": free_port(),
            "tls_port": free_port(),
        },
        "msrp": {"port": free_port()},
    }
    for name, values in tables.items():
        base.setdefault(name, {}).update(values)
    for name, values in base.items():
        table = tomlkit.table()
        for key, value in values.items():
            table[key] = value
        doc[name] = table
    path.write_text(tomlkit.dumps(doc))
    return path


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Path]:
    def make(**tables: dict[str, Any]) -> Path:
        return write_config(tmp_path / "appliance.toml", tmp_path / "state", **tables)

    return make


class ServiceProcess:
    """``python -m appliance run`` in a child process, its stderr collected."""

    def __init__(self, config: Path | None, env: dict[str, str] | None = None) -> None:
        args = [sys.executable, "-m", "appliance", "run"]
        if config is not None:
            args += ["--config", str(config)]
        full_env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"}
        }
        full_env.update(env or {})
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=full_env
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_log(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log:
                return
            if self.proc.poll() is not None:
                self._reader.join(timeout=2)
                if text in self.log:
                    return
                raise AssertionError(f"service exited ({self.proc.returncode}):\n{self.log}")
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not logged within {timeout} s:\n{self.log}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=2)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def run_service() -> Iterator[Callable[..., ServiceProcess]]:
    started: list[ServiceProcess] = []

    def start(config: Path | None, env: dict[str, str] | None = None) -> ServiceProcess:
        service = ServiceProcess(config, env)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
