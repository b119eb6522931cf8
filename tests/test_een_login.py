"""``mjpeg-proxy een-login`` against the fake EEN v3 on 127.0.0.1 (issue 13, item 2).

The test plays the browser: it opens the printed authorize address and follows EEN's
redirect to the command's listener, or pastes the address the browser ends on. Protocol
facts: the project's EEN notes (shared/EEN-API.md), section 3.1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import socket
import stat
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest

from mjpeg_proxy.een_login import een_login
from mjpeg_proxy.sources.een_tokens import read_tokens
from mjpeg_proxy.sources.een_v3_config import EenV3Config
from tests.fake_een_v3 import FakeEenV3
from tests.processes import REPO_ROOT, free_port

WAIT_S = 5.0
SECRET_ENV = "EEN_CLIENT_SECRET"


class Browser:
    """The user's browser: ``open`` is een-login's ``open_browser``; what it does with the address is the test's."""

    def __init__(self, visit: Callable[[str], Awaitable[None]]) -> None:
        self.visit = visit
        self.tasks: list[asyncio.Task[None]] = []

    def open(self, url: str) -> None:
        self.tasks.append(asyncio.create_task(self.visit(url)))

    async def finish(self) -> None:
        await asyncio.wait_for(asyncio.gather(*self.tasks), WAIT_S)


@pytest.fixture
def redirect_uri() -> str:
    return f"http://127.0.0.1:{free_port()}/callback"


@pytest.fixture
async def fake_url(aiohttp_server, fake: FakeEenV3) -> str:
    server = await aiohttp_server(fake.app())
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def fake(redirect_uri: str) -> FakeEenV3:
    return FakeEenV3(redirect_uris=(redirect_uri,))


@pytest.fixture
async def browser_session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as session:
        yield session


def account_of(fake: FakeEenV3, fake_url: str, tmp_path: Path, secret: str | None = None) -> EenV3Config:
    return EenV3Config(fake.client_id, secret or fake.client_secret, str(tmp_path / "een.json"), fake_url)


async def login(
    account: EenV3Config,
    redirect_uri: str,
    browser: Browser | None,
    pasted: list[str] = (),  # type: ignore[assignment]
    timeout_s: float = WAIT_S,
) -> tuple[int, str, str, asyncio.Queue[str | None]]:
    """Run een-login in-process; its exit status, output and errors, and the paste queue."""
    out, err = io.StringIO(), io.StringIO()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    for line in pasted:
        lines.put_nowait(line)
    status = await een_login(
        account,
        redirect_uri,
        pasted=lines,
        out=out,
        err=err,
        open_browser=browser.open if browser else None,
        timeout_s=timeout_s,
        wall_clock=lambda: 1_800_000_000.0,
    )
    if browser:
        await browser.finish()
    return status, out.getvalue(), err.getvalue(), lines


def assert_no_secret(fake: FakeEenV3, *texts: str) -> None:
    secrets = [fake.client_secret, *fake.access_tokens, *fake.refresh_tokens]
    for text in texts:
        for secret in secrets:
            assert secret not in text


def follow(session: aiohttp.ClientSession, answers: list[tuple[int, str]]) -> Callable[[str], Awaitable[None]]:
    """A browser that follows EEN's redirect to the listener and notes the listener's answer."""

    async def visit(url: str) -> None:
        async with session.get(url) as response:
            answers.append((response.status, await response.text()))

    return visit


async def test_the_browser_redirect_reaches_the_listener_and_the_tokens_are_written(
    fake, fake_url, tmp_path, redirect_uri, browser_session
):
    answers: list[tuple[int, str]] = []
    account = account_of(fake, fake_url, tmp_path)
    status, out, err, _ = await login(account, redirect_uri, Browser(follow(browser_session, answers)))
    assert (status, err) == (0, "")
    assert answers[0][0] == 200 and "received the code" in answers[0][1]
    record = read_tokens(account.token_file)
    assert (
        record is not None and record.access_token in fake.access_tokens and record.refresh_token in fake.refresh_tokens
    )
    assert record.expires_at == 1_800_000_000.0 + fake.access_token_ttl_s
    assert stat.S_IMODE(os.stat(account.token_file).st_mode) == 0o600
    port = urlsplit(fake_url).port
    assert f"API host is 127.0.0.1:{port}" in out and account.token_file in out
    assert "Logged in to account Fake Preview Account (id 00001a2b)" in out
    assert fake.token_requests["authorization_code"] == 1
    assert_no_secret(fake, out, err)


async def test_an_account_whose_name_cannot_be_read_still_logs_in(
    fake, fake_url, tmp_path, redirect_uri, browser_session
):
    fake.fail("/api/v3.0/accounts/self", 503)
    account = account_of(fake, fake_url, tmp_path)
    status, out, err, _ = await login(account, redirect_uri, Browser(follow(browser_session, [])))
    assert (status, err) == (0, "")
    assert "Logged in to the account (its name could not be read)" in out
    assert read_tokens(account.token_file) is not None


async def test_the_authorize_address_carries_the_redirect_uri_unencoded_and_a_random_state(
    fake, fake_url, tmp_path, redirect_uri, browser_session
):
    opened: list[str] = []

    async def visit(url: str) -> None:
        opened.append(url)
        await follow(browser_session, [])(url)

    await login(account_of(fake, fake_url, tmp_path), redirect_uri, Browser(visit))
    await login(account_of(fake, fake_url, tmp_path), redirect_uri, Browser(visit))
    assert f"&redirect_uri={redirect_uri}&" in opened[0]
    states = [parse_qs(urlsplit(url).query)["state"][0] for url in opened]
    assert len(states[0]) >= 20 and states[0] != states[1]


async def test_stray_requests_are_answered_and_the_listener_keeps_waiting(
    fake, fake_url, tmp_path, redirect_uri, browser_session
):
    base = redirect_uri.rsplit("/", 1)[0]
    strays: list[int] = []

    async def visit(url: str) -> None:
        for stray in (f"{base}/favicon.ico", redirect_uri, f"{redirect_uri}?foo=1"):
            async with browser_session.get(stray) as response:
                strays.append(response.status)
        await follow(browser_session, [])(url)

    status, out, err, _ = await login(account_of(fake, fake_url, tmp_path), redirect_uri, Browser(visit))
    assert status == 0, err
    assert strays == [404, 400, 400]


async def test_an_answer_with_a_wrong_state_is_ignored(fake, fake_url, tmp_path, redirect_uri, browser_session):
    async def visit(url: str) -> None:
        async with browser_session.get(f"{redirect_uri}?code=forged&state=not-ours") as response:
            assert response.status == 400
        await follow(browser_session, [])(url)

    status, out, err, _ = await login(account_of(fake, fake_url, tmp_path), redirect_uri, Browser(visit))
    assert status == 0
    assert "state is not this login's" in err
    assert fake.token_requests["authorization_code"] == 1  # the forged code never reached EEN


async def pasted_address(session: aiohttp.ClientSession, url: str) -> str:
    """The address the browser ends on, the listener unreachable: EEN's redirect, not followed."""
    async with session.get(url, allow_redirects=False) as response:
        assert response.status == 302
        return response.headers["Location"]


@pytest.mark.parametrize("encoded", [True, False])
async def test_the_address_pasted_on_standard_input_logs_in(
    fake, fake_url, tmp_path, redirect_uri, browser_session, encoded
):
    lines: list[asyncio.Queue[str | None]] = []

    async def visit(url: str) -> None:
        address = await pasted_address(browser_session, url)
        if not encoded:  # as some terminals and browsers show it: '/', '+', '=' in the code as they are
            code = parse_qs(urlsplit(address).query)["code"][0]
            address = address.replace(quote(code, safe=""), code)
            assert "+" in address
        lines[0].put_nowait("garbage\n")
        lines[0].put_nowait(f"  {address}  \n")

    queue_holder = Browser(visit)
    # The paste queue exists only once een_login runs: hand it over through the closure.
    out, err = io.StringIO(), io.StringIO()
    pasted: asyncio.Queue[str | None] = asyncio.Queue()
    lines.append(pasted)
    account = account_of(fake, fake_url, tmp_path)
    status = await een_login(
        account, redirect_uri, pasted=pasted, out=out, err=err, open_browser=queue_holder.open, timeout_s=WAIT_S
    )
    await queue_holder.finish()
    assert status == 0, err.getvalue()
    assert "that line is not the answer" in err.getvalue()
    assert read_tokens(account.token_file) is not None
    assert_no_secret(fake, out.getvalue(), err.getvalue())


async def test_a_token_file_in_a_missing_folder_exits_1_before_the_browser_step(fake, fake_url, tmp_path, redirect_uri):
    account = dataclasses.replace(account_of(fake, fake_url, tmp_path), token_file=str(tmp_path / "no" / "t.json"))
    status, out, err, _ = await login(account, redirect_uri, None)
    assert status == 1 and out == ""
    assert f"its folder {tmp_path / 'no'} does not exist" in err and "\n" not in err.strip()
    assert fake.requests["/oauth2/authorize"] == 0


async def test_an_expired_code_exits_1_with_the_reason(fake, fake_url, tmp_path, redirect_uri, browser_session):
    fake.code_ttl_s = 0.0
    account = account_of(fake, fake_url, tmp_path)
    status, out, err, _ = await login(account, redirect_uri, Browser(follow(browser_session, [])))
    assert status == 1
    assert "refused the code (HTTP 401" in err and "run een-login again" in err and "\n" not in err.strip()
    assert not os.path.exists(account.token_file)


async def test_a_wrong_client_secret_exits_1_and_is_not_shown(fake, fake_url, tmp_path, redirect_uri, browser_session):
    account = account_of(fake, fake_url, tmp_path, secret="wrong-secret-9999")
    status, out, err, _ = await login(account, redirect_uri, Browser(follow(browser_session, [])))
    assert status == 1 and "client secret" in err
    assert "wrong-secret-9999" not in out + err


async def test_a_declined_consent_exits_1(fake, fake_url, tmp_path, redirect_uri):
    async def visit(url: str) -> None:
        state = parse_qs(urlsplit(url).query)["state"][0]
        pasted.put_nowait(f"{redirect_uri}?error=access_denied&error_description=The+user+said+no&state={state}\n")

    browser = Browser(visit)
    out, err = io.StringIO(), io.StringIO()
    pasted: asyncio.Queue[str | None] = asyncio.Queue()
    status = await een_login(
        account_of(fake, fake_url, tmp_path), redirect_uri, pasted=pasted, out=out, err=err, open_browser=browser.open
    )
    await browser.finish()
    assert status == 1 and "did not authorize: access_denied" in err.getvalue()


async def test_a_redirect_port_in_use_exits_1_saying_so(fake, fake_url, tmp_path, redirect_uri):
    port = urlsplit(redirect_uri).port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        status, out, err, _ = await login(account_of(fake, fake_url, tmp_path), redirect_uri, None)
    assert status == 1 and f"port {port} on 127.0.0.1 is already in use" in err
    assert out == ""  # no address to open when nothing could receive its answer


async def test_no_answer_gives_up_after_the_timeout(fake, fake_url, tmp_path, redirect_uri):
    status, out, err, lines = await login(account_of(fake, fake_url, tmp_path), redirect_uri, None, timeout_s=0.05)
    assert status == 1 and "no answer within" in err


async def test_the_end_of_standard_input_leaves_the_listener_waiting(
    fake, fake_url, tmp_path, redirect_uri, browser_session
):
    status, out, err, _ = await login(
        account_of(fake, fake_url, tmp_path),
        redirect_uri,
        Browser(follow(browser_session, [])),
        pasted=[None],  # type: ignore[list-item]
    )
    assert status == 0, err


# --- as a process, as a site owner runs it ----------------------------------------------------


def config_file(tmp_path: Path, fake_url: str, fake: FakeEenV3) -> Path:
    path = tmp_path / "proxy.toml"
    path.write_text(
        f'[een]\napi = "v3"\nclient_id = "{fake.client_id}"\nclient_secret_env = "{SECRET_ENV}"\n'
        f'token_file = "een.json"\nauth_url = "{fake_url}"\n'
    )
    return path


async def run_login(
    tmp_path: Path, *args: str, env_secret: str | None = None
) -> tuple[asyncio.subprocess.Process, asyncio.StreamReader, asyncio.StreamReader]:
    env = {**os.environ, SECRET_ENV: env_secret or ""}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "run.py",
        "een-login",
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    return process, process.stdout, process.stderr


async def authorize_address(stdout: asyncio.StreamReader) -> str:
    while True:
        line = (await asyncio.wait_for(stdout.readline(), WAIT_S)).decode()
        assert line, "een-login printed no authorize address"
        if "/oauth2/authorize?" in line:
            return line.strip()


@pytest.mark.parametrize("how", ["listener", "paste"])
async def test_een_login_as_a_process(fake, fake_url, tmp_path, redirect_uri, browser_session, how):
    config = config_file(tmp_path, fake_url, fake)
    process, stdout, stderr = await run_login(
        tmp_path, "--config", str(config), "--no-browser", "--redirect-uri", redirect_uri, env_secret=fake.client_secret
    )
    try:
        address = await authorize_address(stdout)
        if how == "listener":
            await follow(browser_session, [])(address)
        else:
            assert process.stdin is not None
            process.stdin.write((await pasted_address(browser_session, address)).encode() + b"\n")
            await process.stdin.drain()
        assert await asyncio.wait_for(process.wait(), WAIT_S) == 0
        rest = (await stdout.read()).decode() + (await stderr.read()).decode()
        assert "Logged in" in rest
        assert_no_secret(fake, address, rest)
        assert read_tokens(tmp_path / "een.json") is not None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize(
    "text, args, expected",
    [
        ('[een]\nusername = "u"\npassword_env = "EEN_CLIENT_SECRET"\n', (), "een-login is for API v3"),
        ("[server]\nport = 8080\n", (), "no [een] table"),
        (None, ("--redirect-uri", "https://127.0.0.1:3333/callback"), "--redirect-uri must be http://"),
        (None, ("--redirect-uri", "http://example.com:3333/callback"), "--redirect-uri must be http://"),
        (
            '[een]\napi = "v3"\nclient_id = "c"\nclient_secret_env = "UNSET_VAR_X"\ntoken_file = "t"\n',
            (),
            "UNSET_VAR_X",
        ),
    ],
)
async def test_a_bad_configuration_exits_2_with_one_line(fake, fake_url, tmp_path, text, args, expected):
    config = config_file(tmp_path, fake_url, fake)
    if text is not None:
        config.write_text(text)
    process, stdout, stderr = await run_login(tmp_path, "--config", str(config), "--no-browser", *args, env_secret="x")
    assert await asyncio.wait_for(process.wait(), WAIT_S) == 2
    message = (await stderr.read()).decode()
    assert expected in message and message.count("\n") == 1
