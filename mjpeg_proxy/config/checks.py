"""Field checks shared by every table of the configuration.

Numbers in a range, text a login can use, secrets from the environment, fetchable URLs and
host names.

A check takes a value as TOML gave it and returns it converted, or raises ``Problem``
with words that follow the field's name; ``read_fields`` turns a ``Problem`` into the
``ConfigError`` that names the file, the table and the field.
"""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from yarl import URL

_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Characters a reader cannot see: controls, line and paragraph separators, format
# characters (zero-width space, byte-order mark, direction marks), and the other Unicode
# Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt) that are not format
# characters: fillers such as U+3164, variation selectors.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_DEFAULT_IGNORABLE = (
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xE0000, 0xE0FFF),
)  # fmt: skip
# A host name's labels (RFC 1123, section 2.1), after IDNA encoding; "_" is let through, as
# resolvers do for internal names.
_HOST_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line for the site owner."""


class Problem(Exception):
    """What is wrong with one field's value, in words that follow the field's name."""


Fail = Callable[[str, str], ConfigError]
"""Makes the ``ConfigError`` for a field (its key) and a problem, naming file and table."""
Check = Callable[[Any], Any]
"""Returns a field's value converted for its record; raises ``Problem``."""


def read_fields(data: Mapping[str, Any], checks: Mapping[str, Check], fail: Fail) -> dict[str, Any]:
    """The fields of ``data`` that ``checks`` knows, each checked and converted.

    They are checked in the order of ``checks``, so the first wrong field is the one
    reported.

    Raises:
        ConfigError: a field's check found a problem.
    """
    values = {}
    for key, check in checks.items():
        if key in data:
            try:
                values[key] = check(data[key])
            except Problem as e:
                raise fail(key, str(e)) from None
    return values


def check_table(data: Any, path: str, name: str, known: set[str]) -> Fail:
    """Check that the table ``[name]`` is a table of ``known`` keys; return its error maker.

    Raises:
        ConfigError: ``data`` is no table, or holds a key not in ``known``.
    """

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: [{name}]: field {key!r}: {problem}")

    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {name!r} must be a table, written [{name}]")
    for key in data:
        if key not in known:
            raise fail(key, f"unknown key (known: {', '.join(sorted(known))})")
    return fail


def is_int(value: Any) -> bool:
    """Whether ``value`` is a TOML integer (not a boolean)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite TOML integer or float (not a boolean)."""
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def shown(number: float) -> str:
    """``number`` as a message writes a bound: ``30`` for 30.0, ``0.0625``, ``31536000``."""
    return str(int(number)) if float(number).is_integer() else str(number)


def integer_in(low: int, high: int, what: str = "an integer") -> Check:
    """A check for an integer from ``low`` to ``high``; ``what`` names it in the message."""

    def check(value: Any) -> int:
        if not is_int(value) or not low <= value <= high:
            raise Problem(f"must be {what} from {low} to {high}, got {value!r}")
        return int(value)

    return check


def number_in(low: float, high: float, what: str = "a number of seconds") -> Check:
    """A check for a number from ``low`` to ``high``, returned as a float."""

    def check(value: Any) -> float:
        if not is_number(value) or not low <= value <= high:
            raise Problem(f"must be {what} from {shown(low)} to {shown(high)}, got {value!r}")
        return float(value)

    return check


def boolean(value: Any) -> bool:
    """A check for true or false."""
    if not isinstance(value, bool):
        raise Problem(f"must be true or false, got {value!r}")
    return value


def text(value: Any) -> str:
    """A check for a string."""
    if not isinstance(value, str):
        raise Problem(f"must be a string, got {value!r}")
    return value


def secret_from_env(data: Mapping[str, Any], key: str, environ: Mapping[str, str], fail: Fail) -> str | None:
    """The value of the environment variable named by ``data[key]``, or None when ``key`` is absent.

    Raises:
        ConfigError: the name is no variable name, the variable is not set, or its value
            could never log in (``text_problem``).
    """
    name = data.get(key)
    if name is None:
        return None
    if not isinstance(name, str) or not _ENV_NAME_RE.fullmatch(name):
        raise fail(key, 'must be the name of an environment variable, such as "CAMERA_PASSWORD"')
    value = environ.get(name)
    if value is None:
        raise fail(key, f"environment variable {name} is not set")
    # A login with an empty password fails, and repeated failures lock accounts.
    if (problem := text_problem(value, secret=True)) is not None:
        raise fail(key, f"environment variable {name} {problem}")
    return value


def text_problem(value: str, *, secret: bool) -> str | None:
    """What is wrong with a username (``secret=False``) or a password or key, in words that follow its name.

    None when nothing is.

    Each of these fails every login: nothing but blanks; line breaks, control or invisible
    characters (a zero-width space or a byte-order mark pasted with it); for a username,
    blanks at either end.
    """
    if all(_is_invisible(char) or unicodedata.category(char) == "Zs" for char in value):
        return "is set but empty" if not value else "holds only blanks or invisible characters"
    if any(_is_invisible(char) for char in value):
        return "holds a line break, a control character or an invisible one"
    if not secret and value != value.strip():
        return "starts or ends with a blank"
    return None


def has_blank_or_invisible(value: str) -> bool:
    """Whether ``value`` holds a space or a character a reader cannot see (a URL never does)."""
    return any(_is_invisible(char) or unicodedata.category(char) == "Zs" for char in value)


def _is_invisible(char: str) -> bool:
    """Whether ``char`` is drawn as nothing and is no plain space (see ``_INVISIBLE_CATEGORIES``)."""
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _DEFAULT_IGNORABLE)


def check_url(url: Any, fail: Fail, key: str = "url") -> str:
    """Refuse a URL that could never be fetched; return it.

    Refused: not http(s), no host or an impossible one, port 0, credentials in it, or
    spaces and control characters (which ``yarl`` would drop or encode silently, so that a
    typo fails on every retry instead of at start-up).

    Raises:
        ConfigError: the URL is one of those.
    """
    if not isinstance(url, str):
        raise fail(key, f"must be a string, got {url!r}")
    if has_blank_or_invisible(url):
        raise fail(
            key, f"must not contain spaces or invisible characters (write a space in a path as %20), got {url!r}"
        )
    try:
        parsed = URL(url)
        host = parsed.raw_host  # IDNA-encoded: "kamera.müller.de" is "kamera.xn--mller-kva.de"
    except ValueError as e:  # yarl's text names the problem ("Port out of range 0-65535"), not the URL
        raise fail(key, f"is not a valid URL: {e}") from None
    if parsed.scheme not in ("http", "https") or not host:
        raise fail(key, 'must be an http:// or https:// URL with a host, such as "http://cam.example/snapshot.jpg"')
    if not valid_host(host):
        raise fail(key, f"{host!r} is not a valid host name or IP address")
    if parsed.explicit_port == 0:
        raise fail(key, "port must be from 1 to 65535")
    if parsed.user is not None or parsed.password is not None:
        raise fail(key, "must not hold credentials; use 'username' and 'password_env'")
    return url


def valid_host(host: str) -> bool:
    """Whether ``host`` is an IP address or a DNS name a resolver could look up.

    A name's labels are 1-63 letters, digits, '-' or '_', 253 characters at most, and its
    last label is not a number (WHATWG URL: a host whose last label is numeric is read as an
    IPv4 address).
    """
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    return len(name) <= 253 and all(_HOST_LABEL_RE.fullmatch(label) for label in labels) and not labels[-1].isdigit()
