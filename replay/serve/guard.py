"""Who may do what: writes need the bearer token (when there is one) and must come from
the service's own pages; with no token, only requests addressed to this machine are
answered."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from replay.serve.config import is_loopback


def bearer_ok(request: Request, token: str | None) -> bool:
    """Whether `request` may write: any when there is no token, else a bearer of it."""
    if token is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


def same_origin(request: Request) -> bool:
    """Whether a browser sent `request` from one of our pages (or no browser sent it): a
    page of another site may post a form here, and must not upload anything."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


def host_name(host_header: str) -> str:
    """The host of a Host header, without its port (and an IPv6 address's brackets)."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if ":" in host_header else host_header


class LoopbackHostsOnly:
    """ASGI middleware for a service without a token: answer only requests whose Host
    names this machine, so that a site whose name was made to resolve to 127.0.0.1
    (DNS rebinding) cannot read or write through a visitor's browser."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host", "")
            if not is_loopback(host_name(host)):
                response = PlainTextResponse(f"not a loopback host: {host}", 421)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
