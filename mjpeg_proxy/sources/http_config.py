"""The section of a camera that the proxy GETs over HTTP (snapshot and MJPEG cameras).

Its URL, its login, and the cap on one frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

from mjpeg_proxy.config.camera import CameraTable, SourceConfig
from mjpeg_proxy.config.checks import Fail, check_url, integer_in, read_fields, secret_from_env, text_problem

DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
"""Largest upstream frame, in bytes, of a camera without ``max_frame_bytes``."""
MAX_FRAME_BYTES_RANGE = (1024, 1024**3)
"""Least and largest ``max_frame_bytes`` a camera may set, in bytes: below the smallest
useful JPEG there is nothing to show; above the largest, one frame could take the memory."""
MAX_FRAME_BYTES_CHECK = integer_in(*MAX_FRAME_BYTES_RANGE, "an integer number of bytes")
"""The check of a camera's ``max_frame_bytes`` (``MAX_FRAME_BYTES_RANGE``)."""
HTTP_CAMERA_KEYS = frozenset({"url", "username", "password_env", "auth", "max_frame_bytes"})
"""The keys of a snapshot or MJPEG camera's section."""


@dataclass(frozen=True)
class HttpCameraConfig(SourceConfig):
    """A camera at ``url``, fetched over HTTP.

    ``password`` is the value read from the environment variable named by
    ``password_env``; it is kept out of ``repr`` so it cannot reach a log line. ``auth`` is
    ``"basic"`` or ``"digest"`` when a username is set. ``max_frame_bytes`` caps one
    upstream frame.
    """

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    auth: str | None = None
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES

    @classmethod
    def parse(cls, table: CameraTable) -> Self:
        """Read the section's keys (``HTTP_CAMERA_KEYS``).

        Raises:
            ConfigError: ``url`` is missing or could never be fetched, or the login is
                incomplete or unusable.
        """
        data, fail = table.data, table.fail
        capped = read_fields(data, {"max_frame_bytes": MAX_FRAME_BYTES_CHECK}, fail)
        url = data.get("url")
        if url is None:
            raise fail("url", 'missing; the camera\'s address, such as "http://cam.example/snapshot.jpg"')
        check_url(url, fail)
        username = data.get("username")
        if username is not None and (not isinstance(username, str) or not username):
            raise fail("username", "must be a non-empty string")
        if "password_env" in data and username is None:
            raise fail("password_env", "set 'username' too, or remove 'password_env'")
        password = secret_from_env(data, "password_env", table.environ, fail)
        auth = _auth(data.get("auth"), username, fail)
        return cls(url=url, username=username, password=password, auth=auth, **capped)


def _auth(auth: Any, username: str | None, fail: Fail) -> str | None:
    """The authentication scheme: ``auth``, or Basic when only a username is set.

    Raises:
        ConfigError: an unknown scheme, a scheme without a username, or a username that
            no login could use with it.
    """
    if auth is not None:
        if auth not in ("basic", "digest"):
            raise fail("auth", f'must be "basic" or "digest", got {auth!r}')
        if username is None:
            raise fail("auth", "set 'username' too, or remove 'auth'")
    elif username is not None:
        auth = "basic"
    if username is not None and (problem := text_problem(username, secret=False)) is not None:
        raise fail("username", problem)
    if auth == "basic" and username is not None and ":" in username:
        raise fail("username", "must not contain ':' with HTTP Basic authentication (RFC 7617, section 2)")
    return auth
