"""Operator login against the running service over HTTPS: cookies, refusals, rate limit,
sessions across restarts, logout, the first operator, and the session store itself."""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from appliance.auth.passwords import hash_password
from appliance.config import load_config
from appliance.web.auth import COOKIE, MAX_FAILURES, LoginLimiter, SessionStore, _safe_next
from tests.conftest import ServiceProcess

pytestmark = pytest.mark.slow

PASSWORD = "desk-one-password"


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def cookie(self) -> SimpleCookie:
        jar: SimpleCookie = SimpleCookie()
        for value in self.headers.get_all("Set-Cookie") or []:
            jar.load(value)
        return jar


class Client:
    """One browser-like HTTPS client with no automatic redirects."""

    def __init__(self, port: int, cafile: Path) -> None:
        self.port = port
        self.context = ssl.create_default_context(cafile=str(cafile))
        self.token = ""

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:  # fmt: skip
        conn = http.client.HTTPSConnection("localhost", self.port, context=self.context, timeout=10)
        sent = dict(headers or {})
        body = None
        if form is not None:
            body = urlencode(form)
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
            sent.setdefault("Origin", f"https://localhost:{self.port}")
        if self.token:
            sent["Cookie"] = f"{COOKIE}={self.token}"
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        reply = Reply(response.status, response.headers, response.read())
        conn.close()
        return reply

    def login(self, name: str, password: str, target: str = "/") -> Reply:
        reply = self.request("POST", "/login", {"name": name, "password": password, "next": target})
        if reply.status == 303:
            self.token = reply.cookie()[COOKIE].value
        return reply


def operator_table(name: str, password: str) -> str:
    return f'\n[[operators]]\nname = "{name}"\npassword_hash = "{hash_password(password)}"\n'


@pytest.fixture
def box(
    make_config: Callable[..., Path], run_service: Callable[..., ServiceProcess], tmp_path: Path
) -> Callable[..., tuple[Client, ServiceProcess]]:
    def start(operators: bool = True) -> tuple[Client, ServiceProcess]:
        config = make_config()
        if operators:
            with config.open("a") as out:
                out.write(operator_table("alice", PASSWORD))
        proc = run_service(config)
        proc.wait_log("call-takers' page")
        port = load_config(config).web.port
        return Client(port, tmp_path / "state" / "tls" / "web.crt"), proc

    return start


def test_login_sets_a_strict_cookie_and_opens_the_console(box: Callable[..., Any]) -> None:
    client, _ = box()
    assert client.request("GET", "/").status == 303
    reply = client.login("alice", PASSWORD, "/?from=login")
    assert reply.status == 303
    assert reply.headers["Location"] == "/?from=login"
    morsel = reply.cookie()[COOKIE]
    assert len(morsel.value) >= 43, "256 random bits"
    assert morsel["httponly"] and morsel["secure"]
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/"
    assert int(morsel["max-age"]) == 43200
    page = client.request("GET", "/")
    assert page.status == 200
    assert b'id="calls"' in page.body
    assert client.request("GET", "/metrics").status == 200


def test_wrong_passwords_and_unknown_names_are_refused_alike(box: Callable[..., Any]) -> None:
    client, proc = box()
    wrong = client.login("alice", "not the password")
    unknown = client.login("mallory", PASSWORD)
    for reply in (wrong, unknown):
        assert reply.status == 401
        assert b'role="alert">Wrong user name or password.</p>' in reply.body
        assert "Set-Cookie" not in reply.headers
    assert client.request("GET", "/").status == 303
    proc.wait_log("failed login for 'mallory' from 127.0.0.1")


def test_failed_logins_are_rate_limited(box: Callable[..., Any]) -> None:
    client, _ = box()
    for _ in range(MAX_FAILURES):
        assert client.login("alice", "guess").status == 401
    blocked = client.login("alice", PASSWORD)
    assert blocked.status == 429, "even the right password waits out the lockout"
    assert 1 <= int(blocked.headers["Retry-After"]) <= 300
    assert b"Too many failed logins" in blocked.body
    assert not client.token


def test_sessions_survive_a_restart_and_logout_ends_them(
    box: Callable[..., Any], tmp_path: Path
) -> None:
    client, proc = box()
    assert client.login("alice", PASSWORD).status == 303
    store = tmp_path / "state" / "web" / "sessions.json"
    assert store.stat().st_mode & 0o777 == 0o600
    assert client.token not in store.read_text(), "only the token's hash is kept"
    proc.stop()
    again, _ = box()
    again.token = client.token
    assert again.request("GET", "/").status == 200
    foreign = again.request("POST", "/logout", {}, {"Origin": "https://evil.example"})
    assert foreign.status == 403, "cross-origin POSTs are refused"
    assert again.request("GET", "/").status == 200
    out = again.request("POST", "/logout", {})
    assert (out.status, out.headers["Location"]) == (303, "/login")
    assert again.request("GET", "/").status == 303
    assert again.request("GET", "/api/v1/ws").status == 401


def test_login_form_only_redirects_within_the_box(box: Callable[..., Any]) -> None:
    client, _ = box()
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        reply = client.login("alice", PASSWORD, target)
        assert reply.headers["Location"] == "/", target
    cross = client.request(
        "POST", "/login", {"name": "alice", "password": PASSWORD},
        {"Origin": "https://evil.example"},
    )  # fmt: skip
    assert cross.status == 403
    assert "Set-Cookie" not in cross.headers


def test_first_operator_is_generated_once_and_private(
    box: Callable[..., Any], tmp_path: Path
) -> None:
    client, proc = box(operators=False)
    notice = tmp_path / "state" / "first-operator.txt"
    assert notice.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "state" / "operators.json").stat().st_mode & 0o777 == 0o600
    lines = dict(line.split(":", 1) for line in notice.read_text().splitlines()[:2])
    name, password = lines["User name"].strip(), lines["Password"].strip()
    assert name == "operator"
    assert password not in (tmp_path / "state" / "operators.json").read_text()
    proc.wait_log(str(notice))
    assert client.login(name, password).status == 303
    proc.stop()
    again, _ = box(operators=False)
    assert notice.read_text().count(password) == 1, "the second start keeps the same password"
    assert again.login(name, password).status == 303


def test_configured_operators_retire_the_first_operator(
    box: Callable[..., Any], tmp_path: Path
) -> None:
    _, proc = box(operators=False)
    text = (tmp_path / "state" / "first-operator.txt").read_text()
    password = text.splitlines()[1].split(":", 1)[1].strip()
    proc.stop()
    configured, _ = box(operators=True)
    assert configured.login("operator", password).status == 401
    assert configured.login("alice", PASSWORD).status == 303


def test_session_store_expires_and_ignores_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    store = SessionStore(path, lifetime=300)
    token, session = store.create("alice")
    assert store.lookup(token) == session
    assert store.lookup(token + "x") is None
    data = json.loads(path.read_text())
    (key,) = data
    data[key]["expires"] = time.time() - 1
    path.write_text(json.dumps(data))
    assert SessionStore(path, lifetime=300).lookup(token) is None, "expired on reload"
    path.write_text("{not json")
    assert SessionStore(path, lifetime=300).sessions == {}


def test_limiter_window_and_success_reset() -> None:
    limiter = LoginLimiter()
    keys = ["addr:192.0.2.1", "name:alice"]
    for i in range(MAX_FAILURES):
        assert limiter.retry_after(keys, 1000.0 + i) == 0
        limiter.failed(keys, 1000.0 + i)
    wait = limiter.retry_after(keys, 1005.0)
    assert 290 <= wait <= 300
    assert limiter.retry_after(keys, 1000.0 + 301) == 0, "failures age out of the window"
    limiter.succeeded(["name:alice"])
    assert limiter.retry_after(["name:alice"], 1005.0) == 0


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/", "/"), ("/?a=1", "/?a=1"), ("//evil", "/"), ("http://x/", "/"), ("x", "/")],
)
def test_safe_next(target: str, expected: str) -> None:
    assert _safe_next(target) == expected
