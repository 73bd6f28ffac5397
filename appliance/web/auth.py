"""Operator login: sessions, the login form, and the rule that nothing else is reachable
without one (only ``/login`` and ``/healthz`` are).

Session cookies are random 256-bit tokens; only their SHA-256 is kept, in
``<state>/web/sessions.json`` (0600), so a restart keeps operators logged in and a
leaked state file grants nothing. Failed logins are limited per client address and
per login name; every check costs one scrypt, known name or not.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import html
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from aiohttp import web

from appliance.auth.passwords import hash_password, verify_password
from appliance.config.edit import atomic_write
from appliance.config.schema import Operator

log = logging.getLogger(__name__)

COOKIE = "appliance_session"
OPEN_PATHS = frozenset({"/login", "/healthz", "/static/app.css"})
MAX_FAILURES = 5
FAILURE_WINDOW = 300.0


@functools.cache
def _dummy_hash() -> str:
    """A hash to check unknown names against, so they cost the same scrypt."""
    return hash_password(secrets.token_hex(8))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Session:
    """One logged-in browser."""

    operator: str
    created: float
    expires: float


class SessionStore:
    """Sessions by token hash, persisted across restarts."""

    def __init__(self, path: Path, lifetime: float) -> None:
        self.path = path
        self.lifetime = lifetime
        self.sessions: dict[str, Session] = {}
        self._load()

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
            now = time.time()
            for key, item in raw.items():
                session = Session(str(item["operator"]), float(item["created"]),
                                  float(item["expires"]))  # fmt: skip
                if session.expires > now:
                    self.sessions[str(key)] = session
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable session file %s: %s", self.path, exc)

    def _save(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = {
            k: {"operator": s.operator, "created": s.created, "expires": s.expires}
            for k, s in self.sessions.items()
        }
        atomic_write(self.path, json.dumps(data, indent=1).encode(), mode=0o600)

    def create(self, operator: str) -> tuple[str, Session]:
        """A new session; returns the token for the cookie."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(operator, now, now + self.lifetime)
        self.sessions = {k: s for k, s in self.sessions.items() if s.expires > now}
        self.sessions[self._key(token)] = session
        self._save()
        return token, session

    def lookup(self, token: str) -> Session | None:
        """The live session of a token, if any."""
        session = self.sessions.get(self._key(token))
        if session is None or session.expires <= time.time():
            return None
        return session

    def revoke(self, token: str) -> None:
        """End a session (logout)."""
        if self.sessions.pop(self._key(token), None) is not None:
            self._save()


class LoginLimiter:
    """At most ``MAX_FAILURES`` failed logins per address and per name in 5 minutes."""

    def __init__(self) -> None:
        self.failures: dict[str, list[float]] = {}

    def retry_after(self, keys: list[str], now: float) -> int:
        """Seconds until another attempt is allowed (0: allowed now)."""
        wait = 0.0
        for key in keys:
            recent = [t for t in self.failures.get(key, []) if now - t < FAILURE_WINDOW]
            self.failures[key] = recent
            if len(recent) >= MAX_FAILURES:
                wait = max(wait, recent[-MAX_FAILURES] + FAILURE_WINDOW - now)
        return int(wait) + (1 if wait else 0)

    def failed(self, keys: list[str], now: float) -> None:
        """Count a failure."""
        for key in keys:
            self.failures.setdefault(key, []).append(now)
        if len(self.failures) > 10000:
            self.failures = {k: v for k, v in self.failures.items() if now - v[-1] < 300}

    def succeeded(self, keys: list[str]) -> None:
        """Forget the failures of a successful login's name."""
        for key in keys:
            self.failures.pop(key, None)


class Auth:
    """Login routes and the check every other request passes."""

    def __init__(self, operators: list[Operator], state_dir: Path, lifetime: float,
                 metrics_token: str = "") -> None:  # fmt: skip
        self.operators = {o.name: o for o in operators}
        self.store = SessionStore(state_dir / "web" / "sessions.json", lifetime)
        self.limiter = LoginLimiter()
        self.metrics_token = metrics_token
        self._checks = asyncio.Semaphore(2)

    def install(self, app: web.Application) -> None:
        """Add the login routes and the session check to the web application."""
        app.router.add_get("/login", self._login_form)
        app.router.add_post("/login", self._login)
        app.router.add_post("/logout", self._logout)
        app.middlewares.append(self._check)

    def operator_for(self, request: web.Request) -> Operator | None:
        """The operator of the request's session cookie."""
        token = request.cookies.get(COOKIE)
        session = self.store.lookup(token) if token else None
        return self.operators.get(session.operator) if session is not None else None

    @web.middleware
    async def _check(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        operator = self.operator_for(request)
        if operator is None and request.path == "/metrics" and self.metrics_token:
            given = request.headers.get("Authorization", "")
            if hmac.compare_digest(given, f"Bearer {self.metrics_token}"):
                return await handler(request)
        if operator is None:
            if request.path.startswith("/api/") or request.path == "/metrics":
                return web.json_response({"error": "login required"}, status=401)
            target = quote(request.path_qs, safe="/?=&")
            raise web.HTTPSeeOther(f"/login?next={target}")
        if request.method == "POST" and not self._same_origin(request):
            return web.json_response({"error": "cross-origin request refused"}, status=403)
        request["operator"] = operator
        return await handler(request)

    @staticmethod
    def _same_origin(request: web.Request) -> bool:
        """CSRF defence besides SameSite=Strict: POSTs carry our own Origin."""
        origin = request.headers.get("Origin")
        return origin is None or origin.lower() == f"https://{request.host}".lower()

    # ----- routes --------------------------------------------------------------------------

    async def _login_form(self, request: web.Request) -> web.Response:
        return self._form(request.query.get("next", "/"), "", 200)

    async def _login(self, request: web.Request) -> web.StreamResponse:
        if not self._same_origin(request):
            return self._form("/", "This form must be sent from the console itself.", 403)
        form = await request.post()
        name = str(form.get("name", ""))[:64]
        password = str(form.get("password", ""))[:256]
        target = _safe_next(str(form.get("next", "/")))
        now = time.monotonic()
        keys = [f"addr:{request.remote}", f"name:{name.lower()}"]
        wait = self.limiter.retry_after(keys, now)
        if wait:
            response = self._form(target, f"Too many failed logins. Try again in {wait} s.", 429)
            response.headers["Retry-After"] = str(wait)
            return response
        operator = self.operators.get(name)
        # scrypt takes tens of milliseconds and 16 MiB: run it off the event loop (audio is
        # relayed on the loop) and at most two at a time.
        async with self._checks:
            stored = operator.password_hash if operator else await asyncio.to_thread(_dummy_hash)
            ok = await asyncio.to_thread(verify_password, password, stored)
        if operator is None or not ok:
            self.limiter.failed(keys, now)
            log.warning("failed login for %r from %s", name, request.remote)
            return self._form(target, "Wrong user name or password.", 401)
        self.limiter.succeeded(keys[1:])
        token, session = self.store.create(operator.name)
        log.info("operator %s logged in from %s", operator.name, request.remote)
        response = web.HTTPSeeOther(target)
        response.set_cookie(
            COOKIE, token, max_age=int(session.expires - session.created), path="/",
            secure=True, httponly=True, samesite="Strict",
        )  # fmt: skip
        return response

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        token = request.cookies.get(COOKIE)
        if token:
            self.store.revoke(token)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        return response

    def _form(self, target: str, error: str, status: int) -> web.Response:
        alert = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in — Call-taker console</title><link rel="stylesheet" href="/static/app.css"></head>
<body><main class="login"><form method="post" action="/login" class="panel">
<h1>Call-taker console</h1>{alert}
<input type="hidden" name="next" value="{html.escape(_safe_next(target))}">
<label for="name">User name</label>
<input id="name" name="name" type="text" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password">
<button type="submit" class="go">Log in</button>
</form></main></body></html>
"""
        return web.Response(text=page, status=status, content_type="text/html",
                            headers={"Cache-Control": "no-store"})  # fmt: skip


def _safe_next(target: str) -> str:
    """Only a path on this box: no scheme, no host, no ``//`` (open-redirect guard)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
