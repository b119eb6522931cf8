"""A real ``redis-server`` for tests: a free loopback port, persistence off, its files in a tmp folder.

Stopped and started again, the same server comes back on the same port with no keys, as a
Redis that restarts without persistence does (the case cluster mode must survive).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from tests.processes import free_port

START_LIMIT_S = 10.0
"""The longest ``start`` waits for the server to answer."""
STOP_LIMIT_S = 5.0
"""The longest ``stop`` waits after SIGTERM before SIGKILL."""
_RETRY_S = 0.02  # nothing signals "listening": the port is tried again after this pause


class RedisServer:
    """``redis-server`` on 127.0.0.1 at ``port`` (a free one by default), files in ``directory``.

    No configuration file; no RDB snapshots nor append-only file; ``password`` sets
    ``requirepass``. ``start`` and ``stop`` may alternate any number of times.
    """

    def __init__(self, binary: str, directory: Path, password: str | None = None, port: int | None = None) -> None:
        self.binary = binary
        self.directory = directory
        self.password = password
        self.port = port or free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` (without the password: clients pass it apart)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.directory / "redis.log"

    async def start(self) -> None:
        """Start the server and wait until it answers PING (``START_LIMIT_S`` at most)."""
        assert self.process is None, "already started"
        self.directory.mkdir(parents=True, exist_ok=True)
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.directory), "--logfile", str(self.log_path), "--daemonize", "no"]
        if self.password is not None:
            args += ["--requirepass", self.password]
        self.process = await asyncio.create_subprocess_exec(
            self.binary, *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL
        )
        try:
            async with asyncio.timeout(START_LIMIT_S):
                while not await self._answers():
                    if self.process.returncode is not None:
                        raise RuntimeError(f"redis-server exited with {self.process.returncode}: {self._log_tail()}")
                    await asyncio.sleep(_RETRY_S)
        except TimeoutError:
            await self.stop()
            raise RuntimeError(f"redis-server did not answer in {START_LIMIT_S} s: {self._log_tail()}") from None
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``STOP_LIMIT_S``; nothing if not running."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_LIMIT_S)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _answers(self) -> bool:
        """Whether the server answers PING; ``-NOAUTH`` counts (it is up, and wants the password)."""
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                writer.write(b"PING\r\n")
                reply = await reader.readline()
                return reply.startswith((b"+PONG", b"-NOAUTH"))
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        return False

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return " / ".join(self.log_path.read_text(errors="replace").splitlines()[-3:])
        return "(no log)"
