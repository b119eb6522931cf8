"""``mjpeg-proxy sign``: print a signed link to a camera's stream, snapshot or page (``web.signing``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO
from urllib.parse import parse_qsl, urlsplit

from mjpeg_proxy.config import ConfigError
from mjpeg_proxy.config.loader import load_signing_keys
from mjpeg_proxy.web.signing import sign

DEFAULT_EXPIRES_S = 24 * 3600
"""How long, in seconds, a link printed without ``--expires`` works: a day."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mjpeg-proxy sign``; ``--help`` documents every option."""
    parser = argparse.ArgumentParser(
        prog="mjpeg-proxy sign",
        description=(
            "Print PATH signed with [server] signing_key_env, to put after the proxy's address: "
            "e.g. /cameras/front/stream.mjpg or /cameras/front/snapshot.jpg?fps=2 (its parameters are signed too)."
        ),
    )
    parser.add_argument(
        "--config", metavar="FILE", required=True, help="TOML configuration with [server] signing_key_env"
    )
    parser.add_argument(
        "--expires",
        metavar="SECONDS",
        type=int,
        default=DEFAULT_EXPIRES_S,
        help=f"how long the link works, in seconds from now (default: {DEFAULT_EXPIRES_S}, a day)",
    )
    parser.add_argument("path", metavar="PATH", help="the path from the proxy's root, with its query if any")
    return parser


def main(
    argv: Sequence[str],
    out: TextIO = sys.stdout,
    wall_clock: Callable[[], float] = time.time,
    environ: Mapping[str, str] = os.environ,
) -> int:
    """Run ``mjpeg-proxy sign`` with ``argv`` (after the word ``sign``); return the exit status.

    The key comes from ``environ`` (the variable ``[server] signing_key_env`` names; the
    file's other secrets need not be set); ``wall_clock`` gives seconds since the epoch.

    0 with the signed path on ``out``; 2 for a bad command line or configuration, or
    no signing key (one line on stderr).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    parts = urlsplit(args.path)
    if not args.path.startswith("/") or parts.netloc or parts.fragment:
        parser.error(
            f"PATH must be a path from the proxy's root, such as /cameras/front/stream.mjpg, got {args.path!r}"
        )
    if args.expires <= 0:
        parser.error("--expires must be a number of seconds above 0")
    try:
        keys = load_signing_keys(args.config, environ)
    except ConfigError as error:
        print(f"mjpeg-proxy sign: configuration error: {error}", file=sys.stderr)
        return 2
    if not keys:
        print(f"mjpeg-proxy sign: {args.config}: [server] has no signing_key_env to sign with", file=sys.stderr)
        return 2
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    try:
        link = sign(keys[0], parts.path, int(wall_clock()) + args.expires, params)
    except ValueError as error:
        parser.error(str(error))
    print(link, file=out)
    return 0
