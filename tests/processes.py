"""The proxy as a real process, started as a site owner would (``python run.py ...``) on
127.0.0.1: the one way tests start it, wait until it serves, and stop it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

REPO_ROOT = Path(__file__).resolve().parent.parent
STOP_LIMIT_S = 5.0
"""README: a clean stop "takes well under a second"; five is the most a test accepts."""
START_LIMIT_S = 15.0
"""The longest a test waits for a started process to answer ``/healthz``."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an http_proxy


def http_get(url: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """GET ``url`` of a proxy process with a blocking client; its status and body (a blocked test
    loop holds nothing up: the proxy runs in its own process)."""
    with _DIRECT.open(url, timeout=timeout_s) as response:
        return response.status, response.read()


@dataclass
class ProxyProcess:
    """A running proxy process; its stdout and stderr go to files the test reads at any time."""

    process: asyncio.subprocess.Process
    port: int
    stdout_path: Path
    stderr_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    async def until_serving(self) -> None:
        """Wait until ``/healthz`` answers 200 (short retries, ``START_LIMIT_S`` at most); fail
        if the process exits first."""
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + START_LIMIT_S
            while True:
                assert self.process.returncode is None, f"the server exited early:\n{self.stderr()}"
                try:
                    async with session.get(f"{self.base}/healthz", timeout=aiohttp.ClientTimeout(total=1)) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                assert time.monotonic() < deadline, f"no answer on /healthz within {START_LIMIT_S} s:\n{self.stderr()}"
                await asyncio.sleep(0.05)

    async def stop(self, signum: int = signal.SIGTERM) -> float:
        """Send ``signum``; return the seconds until the process exited (at most ``STOP_LIMIT_S``)."""
        sent = time.monotonic()
        self.process.send_signal(signum)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_LIMIT_S):
                await self.process.wait()
        took = time.monotonic() - sent
        assert self.process.returncode is not None, (
            f"the server did not exit within {STOP_LIMIT_S} s of {signal.Signals(signum).name}"
        )
        return took


@contextlib.asynccontextmanager
async def proxy_process(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    entry: Sequence[str] = ("run.py",),
    serving: bool = True,
) -> AsyncIterator[ProxyProcess]:
    """``python run.py --host 127.0.0.1 --port P *args`` (``entry`` instead of ``run.py``, e.g.
    ``("-m", "mjpeg_proxy")``), answering ``/healthz`` unless ``serving`` is False (the test
    waits itself, with ``until_serving``); killed at the end if still running."""
    port = free_port()
    stdout_path, stderr_path = tmp_path / f"stdout-{port}.log", tmp_path / f"stderr-{port}.log"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *entry,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
        )
    proxy = ProxyProcess(process, port, stdout_path, stderr_path)
    try:
        if serving:
            await proxy.until_serving()
        yield proxy
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
