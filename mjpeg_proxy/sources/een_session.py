"""One logged-in Eagle Eye Networks (EEN) v1 API session, shared by an account's cameras.

Protocol facts come from EEN's v1 API documentation (sections "Authentication" and
"Asset"), summarised with sources in the project's EEN notes:

- Login is ``POST /g/aaa/authenticate`` ``{"username", "password"}`` -> ``{"token"}``,
  then ``POST /g/aaa/authorize`` ``{"token"}`` -> the user as JSON (with
  ``active_brand_subdomain``) and an ``auth_key`` cookie (``videobank_sessionid`` in
  older deployments). Every later call sends ``Cookie: auth_key=<value>``.
- An API key, when the account has one, goes in an ``Authorization: <key>`` header.
- 401 from any call means the session expired: log in again.
- Login errors: 401 bad credentials, 402 account suspended, 412 user disabled,
  460 account inactive, 461 account pending, 462 user pending.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping

import aiohttp
from yarl import URL

from mjpeg_proxy import __version__
from mjpeg_proxy.camera.errors import AuthError, UpstreamUnavailable
from mjpeg_proxy.camera.timing import Clock
from mjpeg_proxy.sources.een_config import EenConfig
from mjpeg_proxy.sources.een_token_store import SharedRecords, SharedRecordsUnavailable
from mjpeg_proxy.sources.http_answers import client_errors, read_capped, status_error
from mjpeg_proxy.sources.login_gate import LoginGate

log = logging.getLogger(__name__)

LOGIN_TIMEOUT_S = 15.0
"""Limit for each of the two login calls, in seconds."""
LOGOUT_TIMEOUT_S = 2.0
"""Limit for the logout call at the end, in seconds."""

_LOGIN_REFUSALS = {
    400: "EEN rejected the login request as malformed",
    401: "EEN refused the username or password",
    402: "the EEN account is suspended",
    412: "the EEN user is disabled or locked",
    429: "EEN locked the login after too many failures",
    460: "the EEN account is inactive",
    461: "the EEN account is pending",
    462: "the EEN user is pending",
}
_LOGIN_ERRORS = dict.fromkeys(_LOGIN_REFUSALS, AuthError)
_GET_REFUSALS = {403: "this user lacks rights to the camera", 404: "unknown camera, or no image"}
_SUBDOMAIN_RE = re.compile(r"[a-z0-9-]{1,63}")
MAX_REDIRECTS = 3
"""Redirects followed for one GET (an asset moved to another archiver), at most."""


class EenSession:
    """Logs in to an EEN account once and makes authenticated GETs for all its cameras.

    A login happens on the first request, and again when any request answers 401:
    cameras that hit the 401 together share one new login. After a failed login,
    every request fails fast with the same error until the next attempt is due
    (``config.timing``: ``refused_login_backoff_s`` for a refusal,
    ``failed_login_backoff_s`` otherwise, doubling each time), so many cameras never
    multiply login attempts. Those waits are timed on ``clock``'s ``monotonic`` seconds.

    With ``records`` (cluster mode), the session is the cluster's: a login first takes the
    one another replica stored, if it is not the one found expired, and stores its own
    under the record's lock, so the replicas log in once between them; nobody logs out of
    it. Without the records reachable, each replica logs in alone.

    The username, password, API key and ``auth_key`` never appear in a log line or
    an error message.
    """

    def __init__(self, config: EenConfig, clock: Clock | None = None, records: SharedRecords | None = None) -> None:
        self._config = config
        self._records = records
        self._record_key = f"een-v1-session:{config.base_url}:{config.username}"
        self._expired_key: str | None = None  # the auth_key last found expired
        self._clock = clock or Clock()
        self.timing = config.timing
        # Our own session without a cookie jar: the auth_key is sent explicitly, so it
        # reaches the branded host (and a test server on 127.0.0.1) and nothing else.
        self._http = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": f"mjpeg-proxy/{__version__}"},
            # Each camera holds one long-poll connection: no limit below the camera count.
            connector=aiohttp.TCPConnector(limit=0),
        )
        self._api_headers = {"Authorization": config.api_key} if config.api_key else {}
        self._login_base = URL(config.base_url)
        self._api_base = self._login_base
        self._auth_key: str | None = None
        self._generation = 0
        self._gate = LoginGate(
            "EEN login", config.timing.refused_login_backoff_s, config.timing.failed_login_backoff_s, self._clock
        )

    async def get(
        self, path: str, params: dict[str, str], timeout: aiohttp.ClientTimeout, max_bytes: int
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """GET ``path`` on the API host with the session; return (status, body, headers).

        ``headers`` is case-insensitive.

        Logs in first when needed, and once more (then retries once) on a 401. Other
        statuses are returned for the caller to judge; the body is read only for a 2xx.

        Raises:
            AuthError: the login was refused, or 401 persists after a fresh login.
            ForbiddenError, NotFoundError: 403 or 404.
            UpstreamUnavailable: network error or 5xx during login, or any network
                error of the request itself (except a timeout).
            BadFrame: a body over ``max_bytes``.
            TimeoutError: ``timeout`` passed before the answer was complete.
        """
        stale: int | None = None
        for _ in range(2):
            generation, auth_key = await self._logged_in(stale)
            headers = {**self._api_headers, "Cookie": f"auth_key={auth_key}"}
            try:
                with client_errors(f"EEN {path}", timeout_message=None):  # a read timeout: the caller's
                    async with self._get_following_redirects(
                        self._url(self._api_base, path, params), headers, timeout
                    ) as response:
                        if response.status == 401:
                            stale = generation
                            continue
                        if response.status in _GET_REFUSALS:
                            message = f"EEN answered {response.status} for {path}: {_GET_REFUSALS[response.status]}"
                            raise status_error(response.status, message, response.headers)
                        if not 200 <= response.status < 300:
                            return response.status, b"", response.headers
                        body = await read_capped(response, max_bytes, f"EEN {path}")
                        return response.status, body, response.headers
            except aiohttp.ConnectionTimeoutError:
                raise UpstreamUnavailable(f"EEN {path}: could not connect") from None
        raise AuthError(f"EEN answered 401 for {path} right after a new login")

    @contextlib.asynccontextmanager
    async def _get_following_redirects(
        self, url: URL, headers: dict[str, str], timeout: aiohttp.ClientTimeout
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        # "301: Asset has been moved to a different archiver" (EEN API v1 docs, Asset).
        # aiohttp drops the Cookie header on a redirect to another host, so redirects are
        # followed here, sending the session only to EEN's own hosts over https, or to the
        # host we logged in to.
        for _ in range(MAX_REDIRECTS + 1):
            async with self._http.get(url, headers=headers, timeout=timeout, allow_redirects=False) as response:
                location = response.headers.get("Location")
                if response.status not in (301, 302, 303, 307, 308) or not location:
                    yield response
                    return
                url = url.join(URL(location))
                if not self._trusted(url):
                    raise UpstreamUnavailable(f"EEN redirected to {url.host}, which is not an EEN host")
        raise UpstreamUnavailable(f"EEN redirected more than {MAX_REDIRECTS} times")

    def _trusted(self, url: URL) -> bool:
        if url.origin() in (self._login_base.origin(), self._api_base.origin()):
            return True
        return url.scheme == "https" and (url.host or "").endswith(".eagleeyenetworks.com")

    @staticmethod
    def _url(base: URL, path: str, params: dict[str, str] | None = None) -> URL:
        """``path`` under ``base``, keeping a path prefix that ``base_url`` may have."""
        url = base.with_path(base.path.rstrip("/") + path)
        return url.with_query(params) if params else url

    def reloaded(self) -> None:
        """Nothing to drop: a refused login's wait protects the account from a lockout, even across reloads."""

    async def close(self) -> None:
        """Log out (``POST /g/aaa/logout``) if logged in (not from the cluster's session), and close the connections."""
        if self._auth_key is not None and self._records is None:
            try:
                async with self._http.post(
                    self._url(self._api_base, "/g/aaa/logout"),
                    headers={**self._api_headers, "Cookie": f"auth_key={self._auth_key}"},
                    timeout=aiohttp.ClientTimeout(total=LOGOUT_TIMEOUT_S),
                ) as response:
                    log.info("EEN: logged out (HTTP %d)", response.status)
            except (aiohttp.ClientError, TimeoutError) as e:
                log.info("EEN: logout failed (%s); the session will expire by itself", type(e).__name__)
            self._auth_key = None
        await self._http.close()

    async def _logged_in(self, stale_generation: int | None) -> tuple[int, str]:
        """Return (generation, auth_key) of a live session, logging in when needed.

        A login is needed when there is no session, or when the caller's session
        (``stale_generation``) was found expired. Cameras that need one together share it
        (``LoginGate``), and after a failed one they wait for the next attempt.
        """
        if self._auth_key is not None and self._generation != stale_generation:
            return self._generation, self._auth_key
        if not self._gate.running and stale_generation is not None and self._auth_key is not None:
            log.info("EEN: session expired; logging in again")
            self._expired_key, self._auth_key = self._auth_key, None
        if self._auth_key is None:
            await self._gate.run(self._log_in)
        assert self._auth_key is not None
        return self._generation, self._auth_key

    async def _log_in(self) -> None:
        """Log in, or take the cluster's session (``records``) when another replica stored a live one."""
        if self._records is None:
            await self._login()
            return
        try:
            async with self._records.lock(self._record_key):
                if self._take_shared(await self._records.get(self._record_key)):
                    return
                await self._login()
                assert self._auth_key is not None
                shared = {"auth_key": self._auth_key, "api_base": str(self._api_base)}
                await self._records.put(self._record_key, json.dumps(shared).encode())
        except SharedRecordsUnavailable as e:
            log.warning("EEN: the cluster's session cannot be reached (%s); logging in here alone", e)
            if self._auth_key is None:
                await self._login()

    def _take_shared(self, data: bytes | None) -> bool:
        """Take the session in the cluster's record ``data`` unless it is missing, bad or the one found expired."""
        if data is None:
            return False
        try:
            shared = json.loads(data)
            auth_key, api_base = shared["auth_key"], URL(shared["api_base"])
        except (ValueError, TypeError, KeyError):
            return False
        if (
            not isinstance(auth_key, str)
            or not auth_key
            or auth_key == self._expired_key
            or not self._trusted(api_base)
        ):
            return False
        self._auth_key, self._api_base = auth_key, api_base
        self._generation += 1
        log.info("EEN: took the cluster's session; API host %s", api_base.host)
        return True

    async def _login(self) -> None:
        credentials = {"username": self._config.username, "password": self._config.password}
        answer, _ = await self._login_call("/g/aaa/authenticate", credentials)
        if "two_factor_authentication_code" in answer:
            raise AuthError("two-factor authentication is on for this EEN user; use a preview-only user without it")
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise UpstreamUnavailable("EEN authenticate answered without a token")
        user, cookies = await self._login_call("/g/aaa/authorize", {"token": token})
        morsel = cookies.get("auth_key") or cookies.get("videobank_sessionid")
        if morsel is None or not morsel.value:
            raise UpstreamUnavailable("EEN authorize set no auth_key cookie")
        self._auth_key = morsel.value
        self._generation += 1
        self._api_base = self._brand_base(user.get("active_brand_subdomain"))
        log.info("EEN: logged in; API host %s", self._api_base.host)

    async def _login_call(self, path: str, body: dict[str, str]) -> tuple[dict, dict]:
        url = self._url(self._login_base, path)
        timed_out = f"EEN login failed: {path} did not answer in {LOGIN_TIMEOUT_S:g} s"
        with client_errors(f"EEN login failed: {path}", timed_out):
            async with self._http.post(
                url, json=body, headers=self._api_headers, timeout=aiohttp.ClientTimeout(total=LOGIN_TIMEOUT_S)
            ) as response:
                if response.status == 401 and path.endswith("/authorize"):
                    raise UpstreamUnavailable(
                        "EEN refused the login token it had just issued (HTTP 401 from authorize)"
                    )
                if not 200 <= response.status < 300:
                    refusal = _LOGIN_REFUSALS.get(response.status)
                    message = f"EEN login failed: HTTP {response.status} from {path}"
                    if refusal is not None:
                        message = f"{refusal} (HTTP {response.status} from {path})"
                    raise status_error(response.status, message, response.headers, _LOGIN_ERRORS)
                try:
                    answer = await response.json(content_type=None)
                except ValueError:
                    raise UpstreamUnavailable(f"EEN login failed: {path} answered something other than JSON") from None
                if not isinstance(answer, dict):
                    raise UpstreamUnavailable(f"EEN login failed: {path} answered unexpected JSON")
                return answer, response.cookies

    def _brand_base(self, subdomain: object) -> URL:
        # Only EEN's own hosts are rewritten; a base_url elsewhere (a test server) stays.
        host = self._login_base.host or ""
        if (
            self._config.use_brand_subdomain
            and isinstance(subdomain, str)
            and _SUBDOMAIN_RE.fullmatch(subdomain)
            and host.endswith(".eagleeyenetworks.com")
        ):
            return self._login_base.with_host(f"{subdomain}.eagleeyenetworks.com")
        return self._login_base
