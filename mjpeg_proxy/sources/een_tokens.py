"""The EEN API v3 token file: one account's OAuth2 tokens, shared by every process that uses it.

JSON with the access token, the refresh token, the access token's expiry (seconds since the
epoch) and the API host (``httpsBaseUrl``, EEN-API.md 3.1-3.2). ``mjpeg-proxy een-login``
writes it; the proxy reads it and writes each refresh's tokens back.

Refresh tokens rotate (EEN-API.md 3.1: the old refresh token and its access token die at
once), so two processes refreshing the same token log each other out. The protocol that
prevents it (issue 13, item 8)::

    async with token_lock(path):          # one refresher at a time, across processes
        record = read_tokens(path)        # re-read: another process may have refreshed
        if record.access_token != the one that failed:
            use record                    # someone else refreshed; no refresh
        else:
            new = refresh(record.refresh_token)
            write_tokens(path, new)       # stored before it is used

``refresh_once`` is that protocol, with the refresh request given by the caller.

``write_tokens`` is atomic (a temporary file in the same folder, fsync, rename, fsync of the
folder), so a reader sees the old record or the new one, never a torn file, and a crash
keeps the old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import stat
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE_MODE = 0o600
"""The token file's mode: the tokens open the account's cameras to whoever reads them."""
LOCK_SUFFIX = ".lock"
"""The lock file sits beside the token file, named like it with this suffix."""


class TokenFileError(Exception):
    """The token file cannot be read or written; the message is one line, with no token in it.

    ``unsaved``: new tokens that EEN issued but that could not be written (the old ones are
    dead already), for the caller to keep in memory; None otherwise.
    """

    def __init__(self, message: str, unsaved: TokenRecord | None = None) -> None:
        super().__init__(message)
        self.unsaved = unsaved


class TokenFileUnwritable(TokenFileError):
    """The token file's folder cannot be written, so no refresh is made (its tokens would be lost)."""


@dataclass(frozen=True)
class TokenRecord:
    """One account's tokens.

    ``expires_at`` is when the access token expires, in seconds since the epoch, and
    ``issued_at`` when it was issued (None when unknown); ``api_host`` and ``api_port``
    are the ``httpsBaseUrl`` where the account's API calls go. The tokens are secrets,
    kept out of ``repr``.
    """

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    api_host: str
    api_port: int = 443
    issued_at: float | None = None

    def refresh_at(self, margin_s: float) -> float:
        """When to refresh the access token, in seconds since the epoch.

        ``margin_s`` before it expires, or at half its lifetime when that comes later (a
        short-lived token).
        """
        if self.issued_at is None:
            return self.expires_at - margin_s
        return self.expires_at - min(margin_s, (self.expires_at - self.issued_at) / 2)

    def to_json(self) -> dict[str, Any]:
        """The record as the file holds it."""
        data: dict[str, Any] = {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
            "httpsBaseUrl": {"hostname": self.api_host, "port": self.api_port},
        }
        if self.issued_at is not None:
            data["issued_at"] = self.issued_at
        return data

    @classmethod
    def from_json(cls, data: Any) -> TokenRecord:
        """Read a record as ``to_json`` writes it.

        Raises:
            ValueError: a field is missing or of the wrong type (the message names it, never a value).
        """
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        for key in ("access_token", "refresh_token"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise ValueError(f"{key} missing or not a string")
        expires_at = data.get("expires_at")
        if not isinstance(expires_at, int | float) or isinstance(expires_at, bool):
            raise ValueError("expires_at missing or not a number")
        base = data.get("httpsBaseUrl")
        if not isinstance(base, dict) or not isinstance(base.get("hostname"), str) or not base["hostname"]:
            raise ValueError("httpsBaseUrl.hostname missing or not a string")
        port = base.get("port", 443)
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise ValueError("httpsBaseUrl.port not a port number")
        issued_at = data.get("issued_at")
        if issued_at is not None and (not isinstance(issued_at, int | float) or isinstance(issued_at, bool)):
            raise ValueError("issued_at not a number")
        return cls(
            data["access_token"],
            data["refresh_token"],
            float(expires_at),
            base["hostname"],
            port,
            None if issued_at is None else float(issued_at),
        )


def read_tokens(path: str | os.PathLike[str]) -> TokenRecord | None:
    """The record in the token file at ``path``; None when there is no file (no login yet).

    Logs a warning when the file is readable or writable by its group or others.

    Raises:
        TokenFileError: the file cannot be read, or holds no record.
    """
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise TokenFileError(f"{path}: cannot read the EEN token file: {e.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "%s: the EEN token file is readable by others (mode %o); chmod 600 it: its tokens open the account",
            path,
            stat.S_IMODE(mode),
        )
    try:
        return TokenRecord.from_json(json.loads(raw))
    except (ValueError, UnicodeDecodeError) as e:  # json.JSONDecodeError is a ValueError; its text quotes no value
        raise TokenFileError(f"{path}: not an EEN token file ({e}); run mjpeg-proxy een-login again") from None


FileSignature = tuple[int, ...] | None
"""What tells one version of a file from another: device, inode, size, mode, owner, mtime and ctime
(ns); None when it is missing. A ``chmod`` or ``chown`` that mends an unreadable file changes it too."""


def file_signature(path: str | os.PathLike[str]) -> FileSignature:
    """The token file's ``FileSignature``: it changes when ``write_tokens`` (or ``een-login``) replaces the file.

    A ``stat``: no read, so it can be asked every few seconds.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mode, st.st_uid, st.st_mtime_ns, st.st_ctime_ns)


def write_tokens(path: str | os.PathLike[str], record: TokenRecord) -> None:
    """Replace the token file at ``path`` with ``record``, atomically, with mode 0600.

    Raises:
        TokenFileError: the folder is missing or not writable, or the disk is full.
    """
    commit_tokens(stage_tokens(path, record), path)


def stage_tokens(path: str | os.PathLike[str], record: TokenRecord) -> Path:
    """Write ``record`` to a new temporary file beside ``path`` (mode 0600, fsynced); return it.

    The first half of ``write_tokens``: until ``commit_tokens`` renames it, ``path`` is untouched.

    Raises:
        TokenFileError: the temporary file cannot be written.
    """
    target = Path(path)
    body = json.dumps(record.to_json(), indent=2).encode() + b"\n"
    try:
        # mkstemp creates the file with mode 0600, so no other user ever sees the tokens.
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise TokenFileError(f"{path}: cannot write the EEN token file: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise TokenFileError(f"{path}: cannot write the EEN token file: {e.strerror}") from None
    return Path(name)


def commit_tokens(staged: Path, path: str | os.PathLike[str]) -> None:
    """Rename ``staged`` (from ``stage_tokens``) over ``path`` and fsync the folder, so the rename survives a crash.

    Raises:
        TokenFileError: the rename failed (``staged`` is removed).
    """
    try:
        os.replace(staged, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(staged)
        raise TokenFileError(f"{path}: cannot write the EEN token file: {e.strerror}") from None
    folder = os.open(Path(path).parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def check_writable(path: str | os.PathLike[str], consequence: str = "") -> None:
    """Make sure a token file can be written at ``path``: a temporary file is made beside it, then removed.

    Raises:
        TokenFileUnwritable: it cannot (the message says why, then ``consequence``).
    """
    folder = Path(path).parent
    try:
        fd, name = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        why = f"its folder {folder} does not exist" if e.errno == errno.ENOENT else e.strerror
        raise TokenFileUnwritable(f"{path}: cannot write the EEN token file: {why}{consequence}") from None


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of the token file at ``path``: beside it, ``LOCK_SUFFIX`` added.

    A separate file, because ``write_tokens`` replaces the token file (a lock on it would
    stay on the old inode).
    """
    return Path(f"{os.fspath(path)}{LOCK_SUFFIX}")


@contextlib.asynccontextmanager
async def token_lock(path: str | os.PathLike[str]) -> AsyncIterator[None]:
    """Hold the token file's refresh lock (``fcntl.flock``, exclusive), waiting for it; see the module's protocol.

    Each holder opens the lock file anew, so two holders in one process exclude each other
    as two processes do; the kernel drops the lock when the holder dies. The wait runs in
    a thread, so the event loop goes on. A task cancelled while waiting leaves no lock
    held: the thread's lock, when it comes, is released at once.

    Raises:
        TokenFileError: the lock file cannot be opened.
    """
    try:
        fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    except OSError as e:
        raise TokenFileError(f"{lock_path(path)}: cannot open the EEN token lock: {e.strerror}") from None
    waiting = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
    try:
        await asyncio.shield(waiting)
    except BaseException:
        # Cancelled while the thread still waits: close once it has the lock (or fails).
        waiting.add_done_callback(lambda _: os.close(fd))
        raise
    try:
        yield
    finally:
        os.close(fd)


async def refresh_once(
    path: str | os.PathLike[str],
    failed_access_token: str,
    refresh: Callable[[TokenRecord], Awaitable[TokenRecord]],
    held: TokenRecord | None = None,
) -> TokenRecord:
    """The tokens to use after ``failed_access_token`` was refused or is due; see the module's protocol.

    Under the lock, the file is read again: when it already holds another access token
    (another task or process refreshed), that record is returned and ``refresh`` not
    called; otherwise ``refresh(record)`` gets new tokens, which are written before they
    are returned. ``held`` is a record the caller holds that could not be written before:
    it counts instead of the file's when it was issued later, and is written now.

    Raises:
        TokenFileUnwritable: the folder cannot be written; no refresh was made.
        TokenFileError: no token file (no login), or it cannot be read; or the new tokens
            could not be written (they are the error's ``unsaved``).
        Exception: whatever ``refresh`` raises (the file is then left as it was).
    """
    async with token_lock(path):
        stored = read_tokens(path)
        record = held if held is not None and (stored is None or issued(held) > issued(stored)) else stored
        if record is None:
            raise TokenFileError(f"{path}: no EEN token file; run mjpeg-proxy een-login")
        if record.access_token != failed_access_token:
            if record is not stored:
                _write_new(path, record)
            return record
        # A refresh kills the old tokens: make sure the new ones can be stored first.
        check_writable(path, "; the EEN tokens are not renewed until it can be")
        new = await refresh(record)
        _write_new(path, new)
        return new


def issued(record: TokenRecord) -> float:
    """When ``record`` was issued, in seconds since the epoch, to tell the newer of two; ``-inf`` when unknown."""
    return record.issued_at if record.issued_at is not None else float("-inf")


def _write_new(path: str | os.PathLike[str], record: TokenRecord) -> None:
    """``write_tokens``, its error carrying ``record`` as unsaved (the tokens in it may be the only live ones).

    Raises:
        TokenFileError: with ``unsaved`` set.
    """
    try:
        write_tokens(path, record)
    except TokenFileError as e:
        raise TokenFileError(str(e), unsaved=record) from None
