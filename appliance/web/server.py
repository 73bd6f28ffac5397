"""The HTTPS server subsystem (aiohttp): /healthz, /metrics and the pages added to it."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from appliance import __version__
from appliance.config.schema import WebConfig
from appliance.runtime.health import Health
from appliance.runtime.loopmonitor import LoopMonitor
from appliance.runtime.metrics import Metrics
from appliance.runtime.subsystem import Subsystem
from appliance.web.tls import TlsFiles, server_context

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


CSP = (
    "default-src 'self'; connect-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class WebServer(Subsystem):
    """Serves HTTPS on the configured addresses and port."""

    def __init__(
        self,
        config: WebConfig,
        tls: TlsFiles,
        *,
        box_name: str,
        health: Health,
        monitor: LoopMonitor,
        metrics: Metrics,
    ) -> None:
        super().__init__("web", health)
        self.config = config
        self.tls = tls
        self.box_name = box_name
        self.all_health = health
        self.monitor = monitor
        self.requests = metrics.counter(
            "appliance_http_requests_total", "HTTP requests answered.", ["route", "code"]
        )
        self.app = web.Application(middlewares=[self._middleware])
        self.app.router.add_get("/", self._index)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_static("/static/", STATIC, append_version=False)
        self._metrics_registry = metrics
        self._runner: web.AppRunner | None = None
        self.bound: list[tuple[str, int]] = []

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count requests by route and add headers every response should carry."""
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self.requests.inc(route=route, code=str(exc.status))
            raise
        self.requests.inc(route=route, code=str(response.status))
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on
        # the console's own form posts, which the CSRF check must refuse.
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    def health_document(self) -> tuple[int, dict[str, object]]:
        """HTTP status and body of /healthz: 200 when ready, 503 with the reasons otherwise."""
        snapshot = self.all_health.snapshot()
        now = time.monotonic()
        body: dict[str, object] = {
            "status": snapshot.overall,
            "problems": snapshot.problems(),
            "components": {
                c.name: {
                    "status": c.status.value,
                    "detail": c.detail,
                    "for_seconds": round(now - c.since, 1),
                }
                for c in snapshot.components
            },
            "event_loop_lag_seconds": round(self.monitor.last_lag, 4),
            "version": __version__,
        }
        return (200 if snapshot.ready else 503), body

    async def _healthz(self, request: web.Request) -> web.Response:
        status, body = self.health_document()
        return web.Response(
            status=status,
            text=json.dumps(body, indent=2) + "\n",
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics_registry.render().encode(),
            headers={
                "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
                "Cache-Control": "no-store",
            },
        )

    async def _index(self, request: web.Request) -> web.FileResponse:
        """The call-takers' page (static; it talks to the box over ``/api/v1/ws``)."""
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    def add_websocket(self, path: str, handler: Handler) -> None:
        """Serve a WebSocket (or any GET) endpoint of another subsystem."""
        self.app.router.add_get(path, handler)

    async def start(self) -> None:
        """Bind every configured address; raises OSError when a port cannot be bound."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        context = server_context(self.tls)
        hosts: list[str | None] = list(self.config.addresses) or [None]
        for host in hosts:
            site = web.TCPSite(
                self._runner, host, self.config.port, ssl_context=context, reuse_address=True
            )
            await site.start()
        self.bound = self._bound_addresses()
        self.health.ok("listening on " + ", ".join(f"{h} port {p}" for h, p in self.bound))

    def _bound_addresses(self) -> list[tuple[str, int]]:
        assert self._runner is not None
        return [(str(a[0]), int(a[1])) for a in self._runner.addresses]

    def urls(self) -> list[str]:
        """Where a browser on the LAN can reach the page."""
        port = self.bound[0][1] if self.bound else self.config.port
        if self.config.addresses:
            hosts = [f"[{a}]" if ":" in a else a for a in self.config.addresses]
        else:
            hosts = [socket.gethostname(), "localhost"]
        return [f"https://{h}:{port}/" for h in hosts]

    async def stop(self) -> None:
        """Close listeners and open connections."""
        await self.cancel_tasks()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
