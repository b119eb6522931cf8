"""A fake IP camera on 127.0.0.1: serves real JPEGs at a snapshot URL, with HTTP Digest auth;
and one that refuses every snapshot request."""

from __future__ import annotations

import hashlib
import secrets
import time

from aiohttp import web

REALM = "fake-camera"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest_challenge(nonce: str) -> dict[str, str]:
    """Headers of a 401 asking for HTTP Digest (RFC 7616: MD5, qop=auth)."""
    return {
        "WWW-Authenticate": (
            f'Digest realm="{REALM}", qop="auth", nonce="{nonce}", opaque="{secrets.token_hex(8)}", algorithm=MD5'
        )
    }


def digest_authorised(request: web.Request, username: str, password: str, nonce: str) -> bool:
    """True when ``request`` carries valid Digest credentials for this user and nonce."""
    params = _parse_digest(request.headers.get("Authorization", ""))
    needed = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")
    if not all(k in params for k in needed):
        return False
    if params["username"] != username or params["nonce"] != nonce or params["qop"] != "auth":
        return False
    ha1 = _md5(f"{username}:{REALM}:{password}")
    ha2 = _md5(f"{request.method}:{params['uri']}")
    expected = _md5(f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}")
    return secrets.compare_digest(expected, params["response"]) and params["uri"] == request.path_qs


def _parse_digest(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "digest":
        return {}
    params = {}
    for item in rest.split(","):
        key, _, value = item.strip().partition("=")
        params[key.lower()] = value.strip('"')
    return params


class FakeSnapshotCamera:
    """Serves ``frames`` in turn at ``/snapshot.jpg``, one per request.

    With ``username`` set, requires HTTP Digest (RFC 7616, MD5, qop=auth), as many IP
    cameras do. ``served`` lists the bodies sent, ``request_times`` the monotonic time
    of each authorised request, ``challenges`` the 401s sent.
    """

    def __init__(self, frames: list[bytes], username: str | None = None, password: str | None = None) -> None:
        self.frames = frames
        self.username = username
        self.password = password
        self.nonce = secrets.token_hex(16)
        self.served: list[bytes] = []
        self.request_times: list[float] = []
        self.challenges = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/snapshot.jpg", self._snapshot)
        return app

    async def _snapshot(self, request: web.Request) -> web.Response:
        if self.username is not None and not digest_authorised(request, self.username, self.password, self.nonce):
            self.challenges += 1
            return web.Response(
                status=401,
                text="<html>401 Unauthorized</html>",
                content_type="text/html",
                headers=digest_challenge(self.nonce),
            )
        self.request_times.append(time.monotonic())
        body = self.frames[len(self.served) % len(self.frames)]
        self.served.append(body)
        return web.Response(body=body, content_type="image/jpeg")


class RefusingCamera:
    """A camera web server that answers every snapshot request with ``status``."""

    def __init__(self, status: int) -> None:
        self.status = status

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/snapshot.jpg", self._refuse)
        return app

    async def _refuse(self, request: web.Request) -> web.Response:
        return web.Response(status=self.status, text=f"<html>{self.status}</html>", content_type="text/html")
