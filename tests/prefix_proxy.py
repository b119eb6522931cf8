"""A reverse proxy on 127.0.0.1 that serves the proxy under a path prefix, as the README's
nginx recipe does (``location /webcam/ { proxy_pass http://127.0.0.1:8080/; }``)."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from yarl import URL

PREFIX = "/webcam/"
# Hop-by-hop or re-framed by this proxy; everything else passes through unchanged.
_NOT_FORWARDED = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def resolve(base: str, reference: str) -> str:
    """The URL a browser goes to for ``reference`` (an ``href``, a ``Location``) on ``base``:
    RFC 3986, section 5.2, as WHATWG URL does it (``urllib.parse.urljoin`` drops empty
    segments such as the one in ``/cameras//garage``)."""
    return str(URL(base).join(URL(reference)))


class PrefixProxy:
    """Forwards ``PREFIX`` + path to ``upstream`` + ``/`` + path, streaming the answer.

    Like nginx without a ``proxy_redirect`` rule, it passes ``Location`` headers through
    unchanged: a redirect stays under the prefix only if the proxy made it relative. With
    ``strip_prefix``, it also forwards the bare prefix (``/webcam``) to ``/`` and says
    ``X-Forwarded-Prefix: /webcam``, as Traefik's StripPrefix middleware does.
    """

    def __init__(self, upstream: str, *, strip_prefix: bool = False) -> None:
        self.upstream = upstream.rstrip("/")
        self.strip_prefix = strip_prefix

    def app(self) -> web.Application:
        app = web.Application()
        if self.strip_prefix:
            app.router.add_route("*", PREFIX.rstrip("/"), self._forward)
        app.router.add_route("*", PREFIX + "{tail:.*}", self._forward)
        app.cleanup_ctx.append(self._session)
        return app

    async def _session(self, app: web.Application):
        self._client = aiohttp.ClientSession(auto_decompress=False)
        yield
        await self._client.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        raw = request.rel_url.raw_path_qs
        url = URL(self.upstream + (raw[len(PREFIX) - 1 :] or "/"), encoded=True)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        if self.strip_prefix:
            headers["X-Forwarded-Prefix"] = PREFIX.rstrip("/")
        async with self._client.request(
            request.method, url, headers=headers, allow_redirects=False, skip_auto_headers=("Accept", "User-Agent")
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                reason=upstream.reason,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _NOT_FORWARDED},
            )
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except ConnectionError:
                pass  # the client left (a stream it read enough of)
            return response
