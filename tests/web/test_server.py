"""The HTTPS endpoints of the running service: /healthz, /metrics, the index page."""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.web.tls import ensure_certificate, fingerprint
from tests.conftest import ServiceProcess

pytestmark = pytest.mark.slow


TOKEN = "scrape-token-for-tests"


def _get(
    url: str, cafile: Path, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    context = ssl.create_default_context(cafile=str(cafile))
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def service(
    make_config: Callable[..., Path], run_service: Callable[..., ServiceProcess], tmp_path: Path
) -> tuple[str, Path, ServiceProcess]:
    config = make_config(web={"metrics_token": TOKEN})
    proc = run_service(config)
    proc.wait_log("call-takers' page")
    port = load_config(config).web.port
    # Verified TLS: the self-signed certificate is valid for "localhost".
    return f"https://localhost:{port}", tmp_path / "state" / "tls" / "web.crt", proc


def test_healthz(service: tuple[str, Path, ServiceProcess]) -> None:
    base, cafile, _ = service
    status, headers, body = _get(base + "/healthz", cafile)
    assert status == 200
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Cache-Control"] == "no-store"
    doc = json.loads(body)
    assert doc["status"] == "ok"
    assert doc["problems"] == []
    assert set(doc["components"]) == {"event-loop", "network", "web", "sip", "calls"}
    assert doc["components"]["web"]["status"] == "ok"
    assert "127.0.0.1 port" in doc["components"]["web"]["detail"]


def test_metrics(service: tuple[str, Path, ServiceProcess]) -> None:
    base, cafile, _ = service
    _get(base + "/healthz", cafile)
    status, _, body = _get(base + "/metrics", cafile)
    assert status == 401, "metrics need a login or the scrape token"
    status, _, _ = _get(base + "/metrics", cafile, {"Authorization": "Bearer wrong"})
    assert status == 401
    status, headers, body = _get(base + "/metrics", cafile, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['appliance_component_up{component="web"}'] == 1
    assert samples['appliance_http_requests_total{route="/healthz",code="200"}'] >= 1
    assert 10e6 < samples["appliance_resident_memory_bytes"] < 500e6
    assert samples["appliance_uptime_seconds"] > 0
    assert "# TYPE appliance_cpu_seconds_total counter" in text
    for line in text.splitlines():  # every sample belongs to a declared family
        if line and not line.startswith("#"):
            family = line.split("{")[0].split(" ")[0]
            assert f"# TYPE {family} " in text


def test_everything_but_login_needs_a_session(service: tuple[str, Path, ServiceProcess]) -> None:
    base, cafile, _ = service
    # Without a session the console redirects to the login form (followed here).
    status, headers, body = _get(base + "/", cafile)
    assert status == 200
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert b'<label for="name">User name</label>' in body
    assert b'name="next" value="/"' in body
    status, _, _ = _get(base + "/static/app.css", cafile)
    assert status == 200
    status, _, _ = _get(base + "/static/app.js", cafile)
    assert status == 200, "followed to the login form"
    status, _, body = _get(base + "/api/v1/ws", cafile)
    assert (status, json.loads(body)) == (401, {"error": "login required"})
    status, _, _ = _get(base + "/nope", cafile)
    assert status == 200, "unknown paths also go to the login form, revealing nothing"
    _, _, metrics = _get(base + "/metrics", cafile, {"Authorization": f"Bearer {TOKEN}"})
    assert b'appliance_http_requests_total{route="/login",code="200"}' in metrics


def test_plain_http_is_not_served(service: tuple[str, Path, ServiceProcess]) -> None:
    base, _, _ = service
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = sock.recv(1024)
    assert not reply.startswith(b"HTTP/1.1 200")


def test_configured_certificate_is_served(
    make_config: Callable[..., Path], run_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    own = ensure_certificate("", "", tmp_path / "own", "site certificate")
    config = make_config(
        web={"certificate": str(own.certificate), "private_key": str(own.private_key)}
    )
    proc = run_service(config)
    proc.wait_log("call-takers' page")
    port = load_config(config).web.port
    status, _, _ = _get(f"https://localhost:{port}/healthz", own.certificate)
    assert status == 200
    assert fingerprint(own.certificate) in proc.log
    assert not (tmp_path / "state" / "tls").exists()
