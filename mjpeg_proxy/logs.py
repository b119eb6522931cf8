"""Logging: the command line's set-up, and summaries of events that come in floods.

The set-up writes one line per event (text or JSON) and keeps scanners' malformed
requests out of the error log; ``SummarisedLog`` turns a flood of one kind of event into
one line per ``SUMMARY_INTERVAL_S``.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from dataclasses import dataclass, field

from aiohttp.http_exceptions import HttpProcessingError
from pythonjsonlogger.json import JsonEncoder, JsonFormatter

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The text log line (``logging`` format)."""
JSON_FIELDS = ("levelname", "name", "message")
"""Fields of each JSON log line besides ``time``, renamed to ``level``, ``logger``, ``message``."""
MAX_SOURCES = 10_000
"""Distinct sources a summary line counts exactly; past it, the count ends in "+" (a flood
from random addresses must not grow memory without bound)."""


class _Rfc3339Encoder(JsonEncoder):
    """Writes times as RFC 3339 (section 5.6) in UTC to the millisecond.

    For example ``2026-12-05T22:42:12.630Z``.
    """

    def format_datetime_obj(self, o: datetime.time | datetime.date | datetime.datetime) -> str:
        if isinstance(o, datetime.datetime):
            return o.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return super().format_datetime_obj(o)


class MalformedRequestFilter(logging.Filter):
    """Turns aiohttp's report of a malformed request into one debug line.

    aiohttp logs every request it cannot parse (bad method, bad path characters,
    over-long headers) at ERROR with a traceback; on a public server scanners send
    such requests all day, which would bury real events. Other errors pass unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to log ``record``; a malformed request's is rewritten as a debug line."""
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        if not logging.getLogger("mjpeg_proxy").isEnabledFor(logging.DEBUG):
            return False
        record.msg = "%s: %s"
        record.args = (record.getMessage(), f"{type(exc).__name__}, {exc.message}")
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def setup_logging(level: str, log_format: str = "text") -> None:
    """Log to stderr at ``level``, one line per event.

    ``level`` is ``"debug"``, ``"info"``, ``"warning"`` or ``"error"``. Lines are plain
    text (``LOG_FORMAT``), or with ``log_format="json"`` one JSON object each (see
    ``json_formatter``) for log shippers.
    """
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    if log_format == "json":
        formatter = json_formatter()
        for handler in logging.getLogger().handlers:
            handler.setFormatter(formatter)
    logging.getLogger("aiohttp.server").addFilter(MalformedRequestFilter())


def json_formatter() -> logging.Formatter:
    """python-json-logger's formatter, writing one JSON object per record.

    The keys are ``time`` (RFC 3339 in UTC, such as ``2026-12-05T22:42:12.630Z``),
    ``JSON_FIELDS`` renamed to ``level``, ``logger`` and ``message``, and ``exc_info``
    with a traceback.
    """
    return JsonFormatter(
        JSON_FIELDS,
        timestamp="time",
        rename_fields={"levelname": "level", "name": "logger"},
        json_encoder=_Rfc3339Encoder,
        json_ensure_ascii=False,
    )


@dataclass
class _Burst:
    """The events of one key since its interval began: how many, their sources, the latest."""

    logger: logging.Logger
    timer: asyncio.TimerHandle
    started: float = field(default_factory=time.monotonic)
    count: int = 0
    sources: set[str] = field(default_factory=set)
    latest: str = ""


SUMMARY_INTERVAL_S = 60.0
"""Events that come in floods are logged at most once per kind in this many seconds: the
first of a quiet period at once, the rest counted in one summary line."""


class SummarisedLog:
    """At most one info log line per key in each ``interval_s`` seconds.

    For kinds of event that one client can cause by the hundred: refused requests,
    viewers closed for not reading. The application's ``interval_s`` is
    ``SUMMARY_INTERVAL_S`` (``web.app.create_app``'s ``log_summary_interval_s``).

    The first event of a key after a quiet interval is logged at once, so an operator sees
    a flood begin. The ones that follow within the interval are counted, and when it ends
    one line says how many came, from how many sources (addresses), and the latest
    message; while they go on, one such line per interval. A timer runs only while a key's
    interval is open, so a server with nothing to report does no work for this.
    """

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._bursts: dict[str, _Burst] = {}

    def event(self, logger: logging.Logger, key: str, source: str, message: str) -> None:
        """Log ``message`` with ``logger`` now, or count it in ``key``'s next summary line.

        ``source`` (a client address) is counted among the distinct sources, up to
        ``MAX_SOURCES``. Must be called from the event loop (the summary is a timer on it).
        """
        burst = self._bursts.get(key)
        if burst is None:
            logger.info("%s", message)
            self._open(logger, key)
            return
        burst.count += 1
        if len(burst.sources) < MAX_SOURCES:
            burst.sources.add(source)
        burst.latest = message

    def close(self) -> None:
        """Log every count not yet reported and stop the timers (when the server stops)."""
        for key, burst in self._bursts.items():
            burst.timer.cancel()
            if burst.count:
                self._summarise(key, burst)
        self._bursts.clear()

    def _open(self, logger: logging.Logger, key: str) -> None:
        timer = asyncio.get_running_loop().call_later(self._interval_s, self._interval_ended, key)
        self._bursts[key] = _Burst(logger, timer)

    def _interval_ended(self, key: str) -> None:
        burst = self._bursts.pop(key)
        if burst.count:
            self._summarise(key, burst)
            self._open(burst.logger, key)  # the flood may go on: the next events are counted again

    def _summarise(self, key: str, burst: _Burst) -> None:
        sources = f"{len(burst.sources)}{'+' if len(burst.sources) >= MAX_SOURCES else ''}"
        burst.logger.info(
            "%s: %d more in the last %.0f s, from %s %s; the latest: %s",
            key,
            burst.count,
            time.monotonic() - burst.started,
            sources,
            "address" if sources == "1" else "addresses",
            burst.latest,
        )
