"""The one exception tree that sources raise and the Camera catches.

A source knows its upstream protocol and turns every failure into one of these;
the Camera alone decides backoff and state from the class. Messages never hold a
secret (password, API key, session key) or a URL's credentials or query.
"""


class SourceError(Exception):
    """An upstream could not give a frame this time.

    ``retry_after_s``, when set, is how long, in seconds from now, no request should be
    made: what the upstream asked for (``Retry-After``), or when a shared session that
    throttles its logins tries again. The Camera waits that long instead of its backoff.
    """

    #: Short machine-readable name, used for counters and status pages.
    kind = "error"

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AuthError(SourceError):
    """The upstream refused our credentials (HTTP 401 after authenticating)."""

    kind = "auth_failed"


class LoginNeeded(AuthError):
    """The upstream account has no login to use, and only a person can give it one (a browser login).

    The source sets ``retry_after_s`` to how often it looks for a new login: looking costs
    no upstream request.
    """

    kind = "login_needed"


class LoginExpired(LoginNeeded):
    """The upstream ended the account's login (a refused token refresh): a person must log in again."""

    kind = "login_expired"


class ForbiddenError(SourceError):
    """The credentials are valid but lack rights to this camera (HTTP 403)."""

    kind = "forbidden"


class NotFoundError(SourceError):
    """The upstream does not know this camera or path (HTTP 404)."""

    kind = "not_found"


class UpstreamUnavailable(SourceError):
    """Network error, timeout, 5xx or any other non-2xx answer, or the upstream ended."""

    kind = "unavailable"


class Stalled(UpstreamUnavailable):
    """The upstream gave no complete frame within the stall timeout (raised by the Camera)."""

    kind = "stalled"


class BadFrame(SourceError):
    """The upstream answered, but what it sent is not one complete JPEG within the size cap."""

    kind = "bad_frame"


def error_kinds() -> tuple[str, ...]:
    """The ``kind`` of ``SourceError`` and of every subclass of it, sorted, each once.

    Read from the classes when called, so a kind added anywhere is listed: these are the
    label values that the error counters show from the start, at 0 until they happen.
    """
    kinds: set[str] = set()
    classes: list[type[SourceError]] = [SourceError]
    while classes:
        cls = classes.pop()
        kinds.add(cls.kind)
        classes.extend(cls.__subclasses__())
    return tuple(sorted(kinds))
