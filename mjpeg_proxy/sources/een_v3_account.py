"""One EEN API v3 account, shared by its cameras: its tokens, their refresh, and authenticated requests.

Protocol facts: the project's EEN notes (EEN-API.md), sections 3.1 (tokens, rotation,
"refresh and retry once on any 401") and 3.2 (the API host, ``httpsBaseUrl``). The tokens
live in the token file that ``mjpeg-proxy een-login`` writes (``een_tokens``), shared with
any other process that serves the same account.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Hashable, Mapping

import aiohttp
from yarl import URL

from mjpeg_proxy import __version__
from mjpeg_proxy.camera.errors import AuthError, LoginExpired, LoginNeeded, SourceError, UpstreamUnavailable
from mjpeg_proxy.camera.timing import Clock
from mjpeg_proxy.sources.een_oauth import Client, LoginError, LoginRefused, refresh
from mjpeg_proxy.sources.een_token_store import FileTokenStore, SharedRecordsUnavailable, TokenStore
from mjpeg_proxy.sources.een_tokens import TokenFileError, TokenFileUnwritable, TokenRecord
from mjpeg_proxy.sources.een_v3_config import EenV3Config
from mjpeg_proxy.sources.http_answers import client_errors
from mjpeg_proxy.sources.login_gate import LoginGate, again

log = logging.getLogger(__name__)

EEN_HOST_SUFFIX = ".eagleeyenetworks.com"
"""The access token goes to EEN's own hosts (and the discovered API host) only."""


class EenV3Account:
    """The login of the EEN API v3 account ``config``, for all its cameras.

    ``tokens()`` gives the tokens to use: read from the token file, refreshed
    ``timing.refresh_margin_s`` before the access token expires (at half its lifetime when
    that is shorter). ``get()`` makes an authenticated GET, and on a 401 refreshes once
    (or takes what another process refreshed) and tries again. Refreshes go through the
    token file's lock (``een_tokens.refresh_once``), so one runs at a time for the account
    across processes, and the rotated tokens are written before they are used; in this
    process, cameras that need one together share it (``LoginGate``).

    Without a usable login (no token file yet, or a refused refresh: the login expired),
    every call raises ``LoginNeeded`` or ``LoginExpired`` at once, with
    ``timing.login_poll_s`` as its ``retry_after_s``, and makes no request until the token
    file changes (a new ``een-login``); then the next call reads it. A task keeps the
    tokens fresh while nobody watches, so the refresh token does not lapse (14 days
    unused). Times are on ``clock``: expiries on its wall clock, waits on its sleep.

    No token or secret appears in a log line or an error message.
    """

    def __init__(self, config: EenV3Config, clock: Clock | None = None, store: TokenStore | None = None) -> None:
        self._clock = clock or Clock()
        self.timing = config.timing
        self.client = Client(config.client_id, config.client_secret, config.auth_url)
        self._store: TokenStore = store or FileTokenStore(config.token_file)
        self._path = config.token_file
        # No cookie jar: nothing but the Bearer header authenticates, sent by hand.
        self._http = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": f"mjpeg-proxy/{__version__}"},
            # Each camera holds one long-poll or stream connection: no limit below the camera count.
            connector=aiohttp.TCPConnector(limit=0),
        )
        self._record: TokenRecord | None = None
        self._stuck: LoginNeeded | None = None  # why there is no usable login
        self._stuck_on: Hashable = None  # the store's version then
        self._look_again = False  # a reload: read the file once more, even unchanged
        self._unsaved = False  # the record in force could not be written to the file
        self._gate = LoginGate(
            "EEN token refresh", self.timing.refused_login_backoff_s, self.timing.failed_login_backoff_s, self._clock
        )
        self._keeper = asyncio.create_task(self._keep_fresh(), name=f"EEN tokens {self._path}")

    async def tokens(self) -> TokenRecord:
        """The tokens to use now, refreshed first when due.

        Raises:
            LoginNeeded: no token file, or an unreadable one (run ``een-login``).
            LoginExpired: EEN refused the refresh; the login must be done again.
            UpstreamUnavailable: a due refresh failed and the access token has expired
                (with the wait before the next attempt).
        """
        record = await self._load()
        if self._clock.wall() >= record.refresh_at(self.timing.refresh_margin_s):
            try:
                record = await self._refreshed(record.access_token)
            except UpstreamUnavailable:
                if self._clock.wall() >= record.expires_at:
                    raise
                # Still valid: the cameras go on with it, and the keeper tries again.
        return record

    @contextlib.asynccontextmanager
    async def get(
        self,
        path_or_url: str | URL,
        params: Mapping[str, str] | None,
        timeout: aiohttp.ClientTimeout,
        accept: str | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET with the access token; yield the answer, whatever its status but 401.

        ``path_or_url`` is a path on the API host, or a full URL EEN gave (a
        ``multipartUrl``), which must be on an EEN host or the API host. Redirects are not
        followed (the token would go along).

        Raises:
            LoginNeeded, LoginExpired: as ``tokens()``.
            AuthError: a fresh access token was refused as well (this address only).
            UpstreamUnavailable: a URL elsewhere than EEN, a redirect, a network error, or a
                connection that could not be made within ``timeout``.
            TimeoutError: ``timeout`` passed while waiting for the answer (a long poll).
        """
        record = await self.tokens()
        for attempt in range(2):
            if isinstance(path_or_url, str):  # a path on the API host (httpsBaseUrl of the record)
                url = self.client.api_url(record.api_host, record.api_port).with_path(path_or_url)
            else:
                url = path_or_url
            self._check_trusted(url, record)
            headers = {"Authorization": f"Bearer {record.access_token}"}
            if accept:
                headers["Accept"] = accept
            where = f"EEN {url.path}"
            with client_errors(where, timeout_message=None):
                try:
                    async with self._http.get(
                        url, params=params, headers=headers, timeout=timeout, allow_redirects=False
                    ) as response:
                        if 300 <= response.status < 400:
                            raise UpstreamUnavailable(f"{where} answered a redirect (HTTP {response.status})")
                        if response.status != 401:
                            yield response
                            return
                except aiohttp.ConnectionTimeoutError:
                    raise UpstreamUnavailable(f"{where}: could not connect") from None
            if attempt == 0:
                record = await self._refreshed(record.access_token)
        # The refresh worked, so the login stands: this one address refuses (a media URL
        # tied to the old token, a permission). The camera waits; its account does not.
        raise AuthError(f"EEN refused a fresh access token for {url.path} (HTTP 401)")

    def reloaded(self) -> None:
        """Without a usable login, read the token file and try it once more, even if it has not changed.

        For an operator who fixed what EEN refused without a new ``een-login``; at most one
        refresh request per reload.
        """
        if self._stuck is not None:
            self._look_again = True
            self._gate.forget()

    async def close(self) -> None:
        """Stop refreshing and close the connections. The tokens are not revoked: that would end the login.

        A refresh under way is let finish first: once sent, the old tokens are dead, so its
        answer must reach the token file.
        """
        self._keeper.cancel()
        await asyncio.gather(self._keeper, return_exceptions=True)
        await self._gate.settled()
        await self._http.close()

    def _check_trusted(self, url: URL, record: TokenRecord) -> None:
        """Refuse to send the access token anywhere but EEN: https (http under a loopback auth URL), EEN's hosts."""
        scheme = "http" if self.client.plain_http else "https"
        host = url.host or ""
        if url.scheme != scheme or not (host == record.api_host or host.endswith(EEN_HOST_SUFFIX)):
            raise UpstreamUnavailable(f"EEN gave a media address on {host or 'no host'}, which is not an EEN host")

    async def _load(self) -> TokenRecord:
        """The record in force; the store is read when there is none, or when it changed while stuck.

        Raises:
            LoginNeeded, LoginExpired: no usable login, and the store has not changed since.
            UpstreamUnavailable: the store cannot be reached (the cluster's records).
        """
        if self._record is not None and self._stuck is None:
            return self._record
        try:
            version = await self._store.version()
            if self._stuck is not None and version == self._stuck_on and not self._look_again:
                raise again(self._stuck, self.timing.login_poll_s)
            self._look_again = False
            record = await self._store.load()
        except TokenFileError as e:
            raise self._stick(LoginNeeded(str(e)), version) from None
        except SharedRecordsUnavailable as e:
            raise UpstreamUnavailable(f"EEN tokens: {e}", retry_after_s=self.timing.login_poll_s) from None
        if record is None:
            no_file = LoginNeeded(f"{self._path}: no EEN token file yet; run mjpeg-proxy een-login")
            raise self._stick(no_file, version)
        if self._stuck is not None:
            log.info("EEN: a new login in %s; the cameras start again", self._store.where)
            self._gate.forget()
        self._stuck, self._record = None, record
        return record

    async def _version_or_none(self) -> Hashable:
        try:
            return await self._store.version()
        except SharedRecordsUnavailable:
            return None

    def _stick(self, error: LoginNeeded, signature: Hashable) -> LoginNeeded:
        """Hold ``error`` until the token file differs from ``signature``; return it to raise.

        Logged when it starts or the file changed, not on every look.
        """
        if self._stuck is None or type(self._stuck) is not type(error) or signature != self._stuck_on:
            log.error("EEN: %s", error)
        self._stuck, self._stuck_on = error, signature
        error.retry_after_s = self.timing.login_poll_s
        return error

    async def _refreshed(self, failed_access_token: str) -> TokenRecord:
        """The tokens after ``failed_access_token`` was refused or is due: refreshed, or another's refresh.

        Raises:
            LoginNeeded, LoginExpired: as ``tokens()``.
            UpstreamUnavailable: the refresh could not reach EEN (with the wait before the next).
        """
        if self._record is not None and self._record.access_token != failed_access_token:
            return await self._load()  # another camera's refresh came first
        await self._gate.run(lambda: self._refresh(failed_access_token))
        return await self._load()

    async def _refresh(self, failed_access_token: str) -> None:
        """Refresh through the token file (``refresh_once``), or take the record another process wrote.

        A refused refresh token or a lost token file is no failure to retry: the account
        holds it as its state (``_stick``) until the file changes.

        Raises:
            UpstreamUnavailable: EEN could not be reached or answered badly.
        """
        asked_of: list[Hashable] = []  # the store's version when EEN was asked (under the lock)

        async def ask(record: TokenRecord) -> TokenRecord:
            asked_of.append(await self._store.version())
            return await refresh(self._http, self.client, record, self._clock.wall)

        held = self._record if self._unsaved else None
        try:
            record = await self._store.renew(failed_access_token, ask, held)
        except LoginRefused as e:
            self._stick(LoginExpired(str(e)), asked_of[0])
            return
        except TokenFileUnwritable as e:
            raise UpstreamUnavailable(str(e)) from None  # retried with backoff; the file may be fixed
        except SharedRecordsUnavailable as e:
            raise UpstreamUnavailable(f"EEN tokens not renewed: {e}") from None  # the replicas must agree
        except TokenFileError as e:
            if e.unsaved is None:
                self._stick(LoginNeeded(str(e)), await self._version_or_none())
                return
            log.error("EEN: %s; the new tokens are kept in memory, and written at the next renewal", e)
            self._record, self._unsaved = e.unsaved, True
            return
        except LoginError as e:
            raise UpstreamUnavailable(f"EEN token refresh: {e}", retry_after_s=e.retry_after_s) from None
        self._record, self._unsaved = record, False
        valid_s = record.expires_at - self._clock.wall()
        host = record.api_host if record.api_port == 443 else f"{record.api_host}:{record.api_port}"
        log.info("EEN: new tokens in force; API host %s, access token valid for %.0f s", host, valid_s)

    async def _keep_fresh(self) -> None:
        """Refresh the tokens when due, whether or not anyone watches; look for a new login while there is none."""
        while True:
            try:
                record = await self._load()
                if self._clock.wall() >= record.refresh_at(self.timing.refresh_margin_s):
                    record = await self._refreshed(record.access_token)
                wait_s = record.refresh_at(self.timing.refresh_margin_s) - self._clock.wall()
            except SourceError as e:
                wait_s = e.retry_after_s if e.retry_after_s is not None else self.timing.login_poll_s
            await self._clock.sleep(max(wait_s, self.timing.min_request_gap_s))
