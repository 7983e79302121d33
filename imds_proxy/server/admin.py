"""The admin app, on a listener of its own: /healthz (the process serves), /readyz (ready, or 503
with the reason) and /metrics (Prometheus text). It never serves credentials."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

#: None when ready, else why not (e.g. "role dev holds no valid credentials").
Readiness = Callable[[], str | None]
#: The metrics in Prometheus's text format, and its content type.
Render = Callable[[], tuple[bytes, str]]

_READINESS: web.AppKey[Readiness] = web.AppKey("readiness")
_RENDER: web.AppKey[Render] = web.AppKey("render")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    reason = request.app[_READINESS]()
    if reason is not None:
        return web.Response(status=503, text=f"not ready: {reason}\n")
    return web.Response(text="ready\n")


async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[_RENDER]()
    return web.Response(body=body, headers={"Content-Type": content_type})


def create_admin_app(readiness: Readiness, render: Render) -> web.Application:
    app = web.Application()
    app[_READINESS] = readiness
    app[_RENDER] = render
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
