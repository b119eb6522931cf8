"""The upstream clients that cameras share.

One HTTP session for plain cameras, the registry of their hosts, the fonts demo cameras draw
with, the clock sources pace their requests by, and one client per account (an EEN
session), kept while a camera in force uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Protocol, TypeVar

import aiohttp

from mjpeg_proxy import __version__
from mjpeg_proxy.camera.timing import Clock
from mjpeg_proxy.config.camera import CameraConfig, SourceConfig
from mjpeg_proxy.pictures.fonts import TextFonts
from mjpeg_proxy.sources.een_token_store import SharedRecords
from mjpeg_proxy.sources.upstream_hosts import UpstreamHosts


class SharedClient(Protocol):
    """A client several cameras' sources use at once (an account's session)."""

    async def close(self) -> None:
        """Release its connections (and log out)."""

    def reloaded(self) -> None:
        """The configuration was read again: drop a wait that only a person's fix could end."""


C = TypeVar("C", bound=SharedClient)


class Upstreams:
    """The clients sources share; make it in a running event loop, ``close()`` it at the end.

    ``http`` serves plain cameras (snapshot, MJPEG); ``hosts`` caps the requests to each
    of their hosts at ``max_requests_per_host``; ``fonts`` are the demo cameras' (None for
    ``fonts.shared_fonts()``); ``clock`` is where sources read the time and wait (the
    cameras' ``CameraTiming.clock``); ``records`` are what the processes serving the same
    accounts share (cluster mode: an EEN v3 login), None for one process. Sources of one
    account share one client (``shared``).
    """

    def __init__(
        self,
        max_requests_per_host: int,
        fonts: TextFonts | None = None,
        clock: Clock | None = None,
        records: SharedRecords | None = None,
    ) -> None:
        self.http = aiohttp.ClientSession(
            headers={"User-Agent": f"mjpeg-proxy/{__version__}"},
            # No total limit (aiohttp's default is 100): each camera holds at most one
            # connection, so a pool limit would only let silent MJPEG upstreams starve the
            # other cameras. Requests per device are capped by `hosts` instead.
            connector=aiohttp.TCPConnector(limit=0),
        )
        self.clock = clock or Clock()
        self.hosts = UpstreamHosts(max_requests_per_host, clock=self.clock)
        self.fonts = fonts
        self.records = records
        self._shared: dict[tuple[str, Hashable], SharedClient] = {}

    def shared(self, section: SourceConfig, client_type: type[C], make: Callable[[], C]) -> C:
        """The ``client_type`` client for ``section``'s kind and ``shared_key()``.

        Made by ``make`` on first use. Two kinds whose sections give equal keys get a
        client each.

        Raises:
            TypeError: the client made for this kind and key first is of another type.
        """
        key = _shared_key(section)
        if key not in self._shared:
            self._shared[key] = make()
        client = self._shared[key]
        if not isinstance(client, client_type):
            raise TypeError(
                f"a {section.kind!r} shared client is a {type(client).__name__}, not a {client_type.__name__}"
            )
        return client

    async def keep_only(self, cameras: Iterable[CameraConfig]) -> None:
        """Close the shared clients that none of ``cameras`` uses any more.

        Called once the cameras run on their new sources, so a changed account's old
        session logs out only after no source uses it.
        """
        used = {_shared_key(camera.source) for camera in cameras}
        for key in [key for key in self._shared if key not in used]:
            await self._shared.pop(key).close()

    def reloaded(self) -> None:
        """Tell every shared client that the configuration was read again (``SharedClient.reloaded``)."""
        for client in self._shared.values():
            client.reloaded()

    async def close(self) -> None:
        """Close every client."""
        await self.keep_only(())
        await self.http.close()


def _shared_key(section: SourceConfig) -> tuple[str, Hashable]:
    """The key of ``section``'s shared client: its kind's name and its ``shared_key()``."""
    return section.kind, section.shared_key()
