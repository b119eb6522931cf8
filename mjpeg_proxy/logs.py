"""Logging set-up for the command line: one line per event, no noise from scanners."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class MalformedRequestFilter(logging.Filter):
    """Turns aiohttp's report of a malformed request into one debug line.

    aiohttp logs every request it cannot parse (bad method, bad path characters,
    over-long headers) at ERROR with a traceback; on a public server scanners send
    such requests all day, which would bury real events. Other errors pass unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
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


def setup_logging(level: str) -> None:
    """Log to stderr at ``level`` (``"debug"``, ``"info"``, ``"warning"`` or ``"error"``)."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    logging.getLogger("aiohttp.server").addFilter(MalformedRequestFilter())
