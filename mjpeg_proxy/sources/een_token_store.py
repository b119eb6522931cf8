"""Where an EEN API v3 account's tokens live: the token file, or a record every replica shares.

One process, or several on one machine: the token file (``een_tokens``: atomic writes,
the ``flock`` lock, ``refresh_once``). Replicas of a cluster on several machines: a shared
record (``SharedRecords``, Redis in cluster mode) with a lock of its own, seeded from the
token file that ``een-login`` wrote on one of them; whichever record was issued later
wins, so a new ``een-login`` on any replica reaches them all. The protocol is the same
either way (``een_tokens``, issue 13 item 8): under the lock, read again; when the record
holds another access token than the one that failed, take it; else refresh and store the
new tokens before using them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from mjpeg_proxy.sources.een_tokens import (
    TokenFileError,
    TokenRecord,
    check_writable,
    file_signature,
    issued,
    read_tokens,
    refresh_once,
    write_tokens,
)

log = logging.getLogger(__name__)

Refresh = Callable[[TokenRecord], Awaitable[TokenRecord]]
"""Asks EEN for new tokens for a record (``een_oauth.refresh``)."""


class TokenStore(Protocol):
    """An account's tokens, shared by every process that serves the account."""

    where: str
    """What it is, for messages: the token file's path, or that and the cluster."""

    async def version(self) -> Hashable:
        """Something that changes when the tokens do (a new ``een-login``, another's refresh); cheap."""

    async def load(self) -> TokenRecord | None:
        """The tokens; None before any login.

        Raises:
            TokenFileError: they cannot be read.
        """

    async def renew(self, failed_access_token: str, refresh: Refresh, held: TokenRecord | None) -> TokenRecord:
        """``een_tokens.refresh_once``'s protocol on this store.

        Raises:
            TokenFileError, TokenFileUnwritable: as ``refresh_once``.
            Exception: whatever ``refresh`` raises.
        """


class FileTokenStore:
    """The token file at ``path`` (``een_tokens``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.where = path

    async def version(self) -> Hashable:
        """The file's ``FileSignature``."""
        return file_signature(self.path)

    async def load(self) -> TokenRecord | None:
        """``read_tokens``."""
        return read_tokens(self.path)

    async def renew(self, failed_access_token: str, refresh: Refresh, held: TokenRecord | None) -> TokenRecord:
        """``refresh_once`` on the file."""
        return await refresh_once(self.path, failed_access_token, refresh, held)


class SharedRecords(Protocol):
    """Small records several processes share, and a lock per record (Redis in cluster mode).

    Every method raises ``SharedRecordsUnavailable`` when the records cannot be reached.
    """

    async def get(self, key: str) -> bytes | None:
        """The record ``key``; None when there is none."""

    async def put(self, key: str, value: bytes) -> None:
        """Store ``value`` as the record ``key``."""

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold record ``key``'s lock for the block (one holder at a time, whatever the process)."""


class SharedRecordsUnavailable(Exception):
    """The shared records cannot be reached now; the message says why, with no secret in it."""


class SharedTokenStore:
    """The account's tokens in ``records`` under ``key``, seeded from the token ``file``.

    The record counts when it was issued later than the file's; a file issued later (a new
    ``een-login`` on this machine) replaces it. Each renewal also writes the file, so a
    replica restarted without the records starts from its latest tokens. Raises
    ``SharedRecordsUnavailable`` when the records cannot be reached (no renewal then: the
    replicas could not agree on one).
    """

    def __init__(self, records: SharedRecords, key: str, file: FileTokenStore) -> None:
        self._records = records
        self._key = key
        self._file = file
        self.where = f"{file.path} (shared by the cluster)"

    async def version(self) -> Hashable:
        """The file's signature and the shared record's bytes' hash."""
        return await self._file.version(), hash(await self._records.get(self._key))

    async def load(self) -> TokenRecord | None:
        """The later issued of the shared record and the file's (stored as the shared one when it is the file's)."""
        shared = await self._shared()
        try:
            local = await self._file.load()
        except TokenFileError:
            if shared is None:
                raise
            local = None
        if local is not None and (shared is None or issued(local) > issued(shared)):
            await self._records.put(self._key, _encode(local))
            return local
        return shared

    async def renew(self, failed_access_token: str, refresh: Refresh, held: TokenRecord | None) -> TokenRecord:
        """``refresh_once``'s protocol under the shared record's lock."""
        async with self._records.lock(self._key):
            stored = await self.load()
            record = held if held is not None and (stored is None or issued(held) > issued(stored)) else stored
            if record is None:
                raise TokenFileError(f"{self._file.path}: no EEN token file; run mjpeg-proxy een-login")
            if record.access_token != failed_access_token:
                if record is not stored:
                    await self._store(record)
                return record
            check_writable(self._file.path, "; the EEN tokens are not renewed until it can be")
            new = await refresh(record)
            await self._store(new)
            return new

    async def _shared(self) -> TokenRecord | None:
        data = await self._records.get(self._key)
        if data is None:
            return None
        try:
            return TokenRecord.from_json(json.loads(data))
        except (ValueError, UnicodeDecodeError):
            log.warning("EEN: the cluster's token record is not one; the token file is used")
            return None

    async def _store(self, record: TokenRecord) -> None:
        """Store ``record`` in the shared records, then in the file (a copy: failing there is only logged).

        Raises:
            TokenFileError: with ``unsaved``, when the shared records cannot take it.
        """
        try:
            await self._records.put(self._key, _encode(record))
        except SharedRecordsUnavailable as e:
            raise TokenFileError(f"the cluster's token record cannot be written: {e}", unsaved=record) from None
        try:
            write_tokens(self._file.path, record)
        except TokenFileError as e:
            log.warning("EEN: %s; the cluster's copy is the one in force", e)


def _encode(record: TokenRecord) -> bytes:
    return json.dumps(record.to_json()).encode()
