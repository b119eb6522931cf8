"""Logging set-up for the command line: one line per event, no noise from scanners."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError
from pythonjsonlogger.json import JsonFormatter

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = ("asctime", "levelname", "name", "message")
"""Fields of each JSON log line, renamed to ``time``, ``level``, ``logger``, ``message``."""


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


def setup_logging(level: str, log_format: str = "text") -> None:
    """Log to stderr at ``level`` (``"debug"``, ``"info"``, ``"warning"`` or ``"error"``),
    one line per event: plain text, or with ``log_format="json"`` one JSON object per line
    (keys ``time``, ``level``, ``logger``, ``message``, and ``exc_info`` with a traceback)
    for log shippers, written by python-json-logger."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    if log_format == "json":
        formatter = JsonFormatter(
            JSON_FIELDS,
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )
        for handler in logging.getLogger().handlers:
            handler.setFormatter(formatter)
    logging.getLogger("aiohttp.server").addFilter(MalformedRequestFilter())
