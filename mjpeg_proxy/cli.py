"""The command line: ``mjpeg-proxy`` and ``python run.py``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import logging
import os
import resource
import signal
import sys
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from mjpeg_proxy import __version__
from mjpeg_proxy.config import Config, ConfigError
from mjpeg_proxy.config.loader import default_config, load_config
from mjpeg_proxy.logs import setup_logging
from mjpeg_proxy.sources.een_config import with_een_cameras
from mjpeg_proxy.web import limits, operators
from mjpeg_proxy.web.app import apply_config, create_app

log = logging.getLogger("mjpeg_proxy")

SHUTDOWN_TIMEOUT_S = 3.0
"""How long, in seconds, a stop waits for requests in progress (streams) before closing them."""
UNLIMITED_OPEN_FILES = 1_048_576
"""The open-file limit asked for when the hard limit is unlimited (Linux's default ``nr_open``)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; ``--help`` documents every option."""
    parser = argparse.ArgumentParser(
        prog="mjpeg-proxy",
        description=(
            "Fetch each camera's frames once and re-broadcast them to any number of "
            "viewers as MJPEG (multipart/x-mixed-replace). Without --config, serves "
            "one built-in demo camera. 'mjpeg-proxy een-login --help': log an EEN API v3 account in; "
            "'mjpeg-proxy sign --help': print a signed link."
        ),
    )
    parser.add_argument(
        "--config", metavar="FILE", help="TOML configuration file (see README.md); default: one demo camera"
    )
    parser.add_argument(
        "--een-esn",
        metavar="ESN",
        action="append",
        default=[],
        help=(
            "serve the Eagle Eye Networks camera with this ESN (8 hex digits) as camera id ESN; "
            "repeat for more cameras. The account comes from [een] in --config, else from the "
            "environment variables EEN_USERNAME, EEN_PASSWORD and optionally EEN_API_KEY and EEN_BASE_URL"
        ),
    )
    parser.add_argument("--host", help="address to listen on (default: [server] host, else 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, help="TCP port to listen on (default: [server] port, else 8080)")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="least severe log messages to show (default: info)",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=("text", "json"),
        help="text lines, or one JSON object per line for log shippers (default: text)",
    )
    parser.add_argument(
        "--event-loop",
        default="asyncio",
        choices=("asyncio", "uvloop"),
        help="event loop to serve on: asyncio's own, or uvloop if installed (pip install uvloop) (default: asyncio)",
    )
    parser.add_argument("--version", action="version", version=f"mjpeg-proxy {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGINT or SIGTERM; return the exit status.

    0 after a clean stop, 1 when the server cannot listen, 2 for a bad command line
    or configuration (with one line on stderr saying what is wrong). ``een-login`` or
    ``sign`` as the first argument runs that command instead (``een_login.main``,
    ``sign_link.main``).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["een-login"]:
        from mjpeg_proxy import een_login  # only this command needs it

        return een_login.main(argv[1:])
    if argv[:1] == ["sign"]:
        from mjpeg_proxy import sign_link

        return sign_link.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    # An empty value usually means an unset shell variable ("--host $HOST"); refusing it
    # beats silently serving the demo, or listening on every interface.
    for option, value in (("--config", args.config), ("--host", args.host)):
        if value is not None and not value.strip():
            parser.error(f"{option} must not be empty")
    setup_logging(args.log_level, args.log_format)
    # Until the reload handler is in place, a SIGHUP (logrotate, systemctl reload) must not
    # kill the proxy, which is what it does by default (``entry.main`` does so even earlier).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        config = _load(args)
    except ConfigError as error:
        print(f"mjpeg-proxy: configuration error: {error}", file=sys.stderr)
        return 2
    if not 1 <= config.server.port <= 65535:
        print(f"mjpeg-proxy: --port must be from 1 to 65535, got {config.server.port}", file=sys.stderr)
        return 2
    host, port = config.server.host, config.server.port
    try:
        loop = new_event_loop(args.event_loop)
    except ImportError:
        print("mjpeg-proxy: --event-loop uvloop: uvloop is not installed (pip install uvloop)", file=sys.stderr)
        return 2
    log.info("open-file limit: %d (each viewer takes one)", raise_open_file_limit())
    log.info("event loop: %s", type(loop).__module__.split(".")[0])
    app = create_app(config)
    app.cleanup_ctx.append(functools.partial(_reload_on_sighup, args=args))
    try:
        web.run_app(
            app,
            host=host,
            port=port,
            # Cancel a stream's handler as soon as its viewer disconnects, even while
            # no frame is being written, so no task or socket outlives the viewer.
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            # The access log only counts requests aiohttp refuses before routing.
            access_log=logging.getLogger("mjpeg_proxy.access"),
            access_log_class=limits.access_logger_class(app),
            # A connection must send a whole request head within request_timeout
            # (slow-request attacks), and is closed when idle that long between requests.
            keepalive_timeout=config.server.request_timeout,
            max_line_size=config.server.max_header_bytes,
            max_field_size=config.server.max_header_bytes,
            print=lambda _: _announce(config),
            loop=loop,
        )
    except OSError as error:
        print(f"mjpeg-proxy: cannot listen on {host}:{port}: {error.strerror or error}", file=sys.stderr)
        return 1
    log.info("mjpeg-proxy stopped")
    return 0


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A new event loop of ``kind``: ``"asyncio"`` or ``"uvloop"``.

    Both serve the same number of viewer-frames per CPU-second within the run-to-run
    noise (``bench/RESULTS.md``): the kernel's copy of each part into each socket is the
    cost, not the loop. Raises ImportError for ``"uvloop"`` when it is not installed.
    """
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def raise_open_file_limit() -> int:
    """Raise this process's open-file limit to the hard limit the system allows; return it.

    Each viewer holds a socket, and the usual soft limit (1024) would refuse viewers long
    before the CPU is busy. When the hard limit is unlimited, ``UNLIMITED_OPEN_FILES`` is
    asked for.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, UNLIMITED_OPEN_FILES)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def _load(args: argparse.Namespace) -> Config:
    """The configuration the command line asks for.

    That is the file, the ``--een-esn`` cameras, the ``--host`` and ``--port`` overrides;
    the demo camera without a file.

    Raises:
        ConfigError: the file or the ESNs are wrong.
    """
    config = load_config(args.config, require_cameras=not args.een_esn) if args.config else None
    if args.een_esn:
        config = with_een_cameras(config, args.een_esn, os.environ)
    return _with_overrides(config or default_config(), args.host, args.port)


async def _reload_on_sighup(app: web.Application, args: argparse.Namespace) -> AsyncIterator[None]:
    """While the app runs, read the configuration again and apply it on each SIGHUP.

    SIGHUP comes from ``systemctl reload`` or logrotate's ``postrotate``; the new
    configuration is applied with ``web.app.apply_config``. One that does not load is
    logged and the running one kept. Reloads run one at a time.
    """
    loop = asyncio.get_running_loop()
    lock = asyncio.Lock()
    tasks: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        async with lock:
            if args.config is None:
                log.info("SIGHUP: started without --config; nothing to reload")
                return
            try:
                config = _load(args)
            except ConfigError as error:
                log.error("configuration not reloaded, the running one is kept: %s", error)
                return
            await apply_config(app, config)

    def on_sighup() -> None:
        log.info("SIGHUP: reloading the configuration")
        task = loop.create_task(reload(), name="configuration reload")
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # not the default, which kills: shutdown goes on
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _with_overrides(config: Config, host: str | None, port: int | None) -> Config:
    """``config`` with the ``--host`` and ``--port`` given (None: the file's value kept)."""
    server = config.server
    if host is not None:
        server = dataclasses.replace(server, host=host)
    if port is not None:
        server = dataclasses.replace(server, port=port)
    return dataclasses.replace(config, server=server)


def _announce(config: Config) -> None:
    """Log, once listening, the addresses to open: the camera list and each stream."""
    host = config.server.host
    shown = f"[{host}]" if ":" in host else ("127.0.0.1" if host in ("0.0.0.0", "") else host)
    base = f"http://{shown}:{config.server.port}"
    log.info("mjpeg-proxy %s serving %d camera(s) on %s:%d", __version__, len(config.cameras), host, config.server.port)
    log.info("all cameras: %s/", base)
    operators.warn_if_open(config.server)
    for camera in config.cameras:
        if camera.access == "signed":
            log.info(
                "camera %s (%s): signed links only: mjpeg-proxy sign --config %s /cameras/%s/stream.mjpg",
                camera.id,
                camera.kind,
                config.path or "FILE",
                camera.id,
            )
        else:
            log.info("camera %s (%s): %s/cameras/%s/stream.mjpg", camera.id, camera.kind, base, camera.id)
