"""``mjpeg-proxy een-login``: log an EEN API v3 account in once, in a browser, and write its token file.

It prints the authorize URL (and opens a browser when there is a desktop), then waits for
the code two ways at once: a listener on the redirect URI's loopback address, which the
browser reaches after consent, and the browser's final address pasted on standard input
(a headless host). It exchanges the code and writes the token file (``sources.een_tokens``).
Protocol: the project's EEN notes (EEN-API.md), section 3.1; EEN's own command-line tool
logs in the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import sys
import threading
import time
import webbrowser
from collections.abc import Callable, Sequence
from typing import TextIO

import aiohttp
from aiohttp import web
from yarl import URL

from mjpeg_proxy.config import ConfigError
from mjpeg_proxy.config.loader import load_table
from mjpeg_proxy.sources.een_oauth import (
    DEFAULT_REDIRECT_URI,
    Client,
    LoginError,
    NotTheAnswer,
    account_name,
    authorize_url,
    code_from_pasted,
    code_from_redirect,
    exchange_code,
    new_state,
    query_values,
)
from mjpeg_proxy.sources.een_tokens import TokenFileError, check_writable, token_lock, write_tokens
from mjpeg_proxy.sources.een_v3_config import EenV3Config, is_loopback

LOGIN_TIMEOUT_S = 5 * 60.0
"""How long, in seconds, een-login waits for the code: the code's own lifetime (EEN-API.md 3.1)."""

PAGE_RECEIVED = (
    "mjpeg-proxy een-login received the code; the terminal says how the login ended. You may close this tab."
)
PAGE_NOT_THIS = "This is mjpeg-proxy een-login's callback, and this request is not the answer to its login: {}."


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mjpeg-proxy een-login``; ``--help`` documents every option."""
    parser = argparse.ArgumentParser(
        prog="mjpeg-proxy een-login",
        description=(
            'Log the EEN API v3 account of [een] (api = "v3") in: open the printed address, log in as the '
            "preview user and consent; the tokens go to [een] token_file. On a host without a browser, "
            "paste the address the browser ends on here, or tunnel the redirect port (ssh -L)."
        ),
    )
    parser.add_argument("--config", metavar="FILE", required=True, help="TOML configuration file with the [een] table")
    parser.add_argument("--no-browser", action="store_true", help="only print the address; do not open a browser")
    parser.add_argument(
        "--redirect-uri",
        metavar="URI",
        default=DEFAULT_REDIRECT_URI,
        help=(
            "the redirect URI registered for the client, exactly as registered; http:// on a loopback "
            f"address, where een-login listens (default: {DEFAULT_REDIRECT_URI})"
        ),
    )
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``mjpeg-proxy een-login`` with ``argv`` (after the word ``een-login``); return the exit status.

    0 when the token file is written; 1 when the login fails (a refused or expired code,
    the redirect port in use, no answer within ``LOGIN_TIMEOUT_S``); 2 for a bad command
    line or configuration.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        account = load_account(args.config)
        check_redirect_uri(args.redirect_uri)
    except ConfigError as error:
        print(f"mjpeg-proxy een-login: configuration error: {error}", file=sys.stderr)
        return 2
    opener = None if args.no_browser or not has_desktop() else webbrowser.open
    return asyncio.run(_main(account, args.redirect_uri, opener))


async def _main(account: EenV3Config, redirect_uri: str, opener: Callable[[str], object] | None) -> int:
    """``een_login`` with standard input's lines as the pasted ones."""
    return await een_login(
        account, redirect_uri, pasted=stdin_lines(), out=sys.stdout, err=sys.stderr, open_browser=opener
    )


def load_account(path: str) -> EenV3Config:
    """The v3 account of the configuration file at ``path`` (its ``[een]`` table alone).

    Raises:
        ConfigError: the file or its ``[een]`` is wrong, missing, or an API v1 account.
    """
    account = load_table(path, "een")
    if not isinstance(account, EenV3Config):
        raise ConfigError(
            f'{path}: [een]: een-login is for API v3 accounts; set api = "v3" with client_id and the rest'
        )
    return account


def check_redirect_uri(uri: str) -> None:
    """Refuse a redirect URI een-login cannot listen on: it must be ``http://`` on a loopback address.

    It must also have no query or fragment, since it goes into the authorize URL unencoded.

    Raises:
        ConfigError: it is not such a URI.
    """
    try:
        url = URL(uri)
    except ValueError:
        url = URL()
    if url.scheme != "http" or not is_loopback(url.raw_host or "") or url.raw_query_string or url.raw_fragment:
        raise ConfigError(
            f"--redirect-uri must be http:// on a loopback address with no query, such as {DEFAULT_REDIRECT_URI}, "
            f"got {uri!r}"
        )


def has_desktop() -> bool:
    """Whether a graphical browser can open: macOS, Windows, or a display under Linux and the BSDs.

    Without one, ``webbrowser`` would start a text browser in this terminal and hide the prompt.
    """
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def stdin_lines() -> asyncio.Queue[str | None]:
    """A queue of standard input's lines, read by a daemon thread; None at its end.

    A thread, because a terminal, a pipe and a file all read alike that way; a daemon,
    so a line never typed keeps no process alive.
    """
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        with contextlib.suppress(RuntimeError):  # the loop is closed: the login is over
            loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read, name="een-login stdin", daemon=True).start()
    return lines


async def een_login(
    account: EenV3Config,
    redirect_uri: str,
    *,
    pasted: asyncio.Queue[str | None],
    out: TextIO,
    err: TextIO,
    open_browser: Callable[[str], object] | None = None,
    timeout_s: float = LOGIN_TIMEOUT_S,
    wall_clock: Callable[[], float] = time.time,
) -> int:
    """Log ``account`` in and write its token file; return the exit status (0, or 1 with the reason on ``err``).

    The code comes from the listener on ``redirect_uri`` or from a line of ``pasted``
    (None ends it), whichever first; ``timeout_s`` bounds the wait in seconds.
    ``wall_clock`` gives seconds since the epoch. No secret or token is written to
    ``out`` or ``err``.
    """
    try:
        check_writable(account.token_file)  # before the browser step, not after it
    except TokenFileError as error:
        print(f"mjpeg-proxy een-login: {error}", file=err)
        return 1
    state = new_state()
    client = Client(account.client_id, account.client_secret, account.auth_url)
    codes: asyncio.Queue[str | LoginError] = asyncio.Queue()
    try:
        runner = await _listen(redirect_uri, state, codes, err)
    except OSError as e:
        url = URL(redirect_uri)
        where = f"{url.host}:{url.port}"
        if e.errno == errno.EADDRINUSE:
            print(
                f"mjpeg-proxy een-login: port {url.port} on {url.host} is already in use (another een-login?); "
                f"stop what listens there, or register and pass another --redirect-uri",
                file=err,
            )
        else:
            print(f"mjpeg-proxy een-login: cannot listen on {where}: {e.strerror or e}", file=err)
        return 1
    reader = asyncio.create_task(_read_pasted(pasted, state, codes, err), name="een-login paste")
    try:
        address = authorize_url(client, redirect_uri, state)
        print(
            f"Open this address, log in as the EEN user whose cameras to serve, and consent:\n\n  {address}\n", file=out
        )
        print(
            f"een-login waits for the browser on {redirect_uri} (up to {timeout_s / 60:g} minutes). "
            "If the browser is on another machine, paste here the address it ends on, then press Enter:",
            file=out,
            flush=True,
        )
        if open_browser is not None:
            with contextlib.suppress(Exception):  # no browser is no failure: the address is printed
                open_browser(address)
        try:
            async with asyncio.timeout(timeout_s):
                answer = await codes.get()
        except TimeoutError:
            print(
                f"mjpeg-proxy een-login: no answer within {timeout_s / 60:g} minutes, and a code lasts 5; "
                "run een-login again",
                file=err,
            )
            return 1
    finally:
        reader.cancel()
        await runner.cleanup()
    if isinstance(answer, LoginError):
        print(f"mjpeg-proxy een-login: {answer}", file=err)
        return 1
    return await _finish(client, answer, redirect_uri, account.token_file, out, err, wall_clock)


async def _finish(
    client: Client,
    code: str,
    redirect_uri: str,
    token_file: str,
    out: TextIO,
    err: TextIO,
    wall_clock: Callable[[], float],
) -> int:
    """Exchange ``code``, write ``token_file`` and say where the account's API is; return the exit status."""
    try:
        async with aiohttp.ClientSession() as session:
            record = await exchange_code(session, client, code, redirect_uri, wall_clock)
            async with token_lock(token_file):  # not in the middle of a running proxy's refresh
                write_tokens(token_file, record)
            account = await account_name(session, client, record)
    except (LoginError, TokenFileError) as error:
        print(f"mjpeg-proxy een-login: {error}", file=err)
        return 1
    port = "" if record.api_port == 443 else f":{record.api_port}"
    reached = f"account {account}" if account else "the account (its name could not be read)"
    print(f"Logged in to {reached}; its API host is {record.api_host}{port}.", file=out)
    print(f"Tokens written to {token_file} (mode 0600); the proxy reads them from there.", file=out, flush=True)
    return 0


async def _listen(redirect_uri: str, state: str, codes: asyncio.Queue[str | LoginError], err: TextIO) -> web.AppRunner:
    """Serve the redirect URI's host and port until cleaned up; the answer goes into ``codes``.

    Every other request (a browser's ``/favicon.ico``, a preconnect, an answer with a
    wrong ``state``) gets a short page and changes nothing.

    Raises:
        OSError: the address cannot be listened on (``errno.EADDRINUSE``: the port is taken).
    """
    url = URL(redirect_uri)
    callback_path = url.path or "/"

    async def answer(request: web.Request) -> web.Response:
        if request.path != callback_path:
            return web.Response(status=404, text=PAGE_NOT_THIS.format("another address"))
        try:
            code = code_from_redirect(query_values(request.raw_path.partition("?")[2]), state)
        except NotTheAnswer as e:
            if request.query:  # a bare visit of the callback is no news; a wrong answer is
                print(f"een-login: ignored a request to the callback: {e}", file=err, flush=True)
            return web.Response(status=400, text=PAGE_NOT_THIS.format(e))
        except LoginError as e:
            codes.put_nowait(e)
            return web.Response(status=200, text=f"mjpeg-proxy een-login: {e}")
        codes.put_nowait(code)
        return web.Response(status=200, text=PAGE_RECEIVED)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, url.raw_host.strip("[]") if url.raw_host else "127.0.0.1", url.port).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner


async def _read_pasted(
    pasted: asyncio.Queue[str | None], state: str, codes: asyncio.Queue[str | LoginError], err: TextIO
) -> None:
    """Put the first pasted line holding this login's code (or EEN's refusal) into ``codes``; say why others do not."""
    while (line := await pasted.get()) is not None:
        if not line.strip():
            continue
        try:
            codes.put_nowait(code_from_pasted(line, state))
        except NotTheAnswer as e:
            print(f"een-login: that line is not the answer: {e}; paste the whole address the browser shows", file=err)
            continue
        except LoginError as e:
            codes.put_nowait(e)
        return
