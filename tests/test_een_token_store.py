"""Where a v3 account's tokens live across replicas (``sources.een_token_store``), on in-memory shared records."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from mjpeg_proxy.sources.een_token_store import FileTokenStore, SharedRecordsUnavailable, SharedTokenStore
from mjpeg_proxy.sources.een_tokens import TokenRecord, read_tokens, write_tokens

OLD = TokenRecord("a-old", "r-old", 2000.0, "h", issued_at=1000.0)
NEW = TokenRecord("a-new", "r-new", 3000.0, "h", issued_at=2000.0)
KEY = "een-v3-tokens:test"


class MemoryRecords:
    """Shared records in a dict; ``down`` makes every call fail as an unreachable Redis would."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.down = False

    async def get(self, key: str) -> bytes | None:
        self._check()
        return self.values.get(key)

    async def put(self, key: str, value: bytes) -> None:
        self._check()
        self.values[key] = value

    @contextlib.asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        self._check()
        async with self.locks.setdefault(key, asyncio.Lock()):
            yield

    def _check(self) -> None:
        if self.down:
            raise SharedRecordsUnavailable("Redis: ConnectionError")


def store(tmp_path, name: str, records: MemoryRecords) -> SharedTokenStore:
    return SharedTokenStore(records, KEY, FileTokenStore(str(tmp_path / f"{name}.json")))


def shared(records: MemoryRecords) -> TokenRecord:
    return TokenRecord.from_json(json.loads(records.values[KEY]))


async def test_the_first_replica_seeds_the_record_from_its_file_and_the_others_read_it(tmp_path):
    records = MemoryRecords()
    write_tokens(tmp_path / "a.json", OLD)
    assert await store(tmp_path, "a", records).load() == OLD
    assert shared(records) == OLD
    assert await store(tmp_path, "b", records).load() == OLD  # b has no file


async def test_a_file_issued_later_replaces_the_record_and_an_older_one_does_not(tmp_path):
    records = MemoryRecords()
    write_tokens(tmp_path / "a.json", OLD)
    write_tokens(tmp_path / "b.json", NEW)  # een-login again, on machine b
    a, b = store(tmp_path, "a", records), store(tmp_path, "b", records)
    await a.load()
    version = await a.version()
    assert await b.load() == NEW and shared(records) == NEW
    assert await a.version() != version  # a replica stuck on the old login sees the change
    assert await a.load() == NEW  # a's older file does not win


async def test_a_renewal_takes_the_lock_refreshes_once_and_stores_before_it_returns(tmp_path):
    records = MemoryRecords()
    write_tokens(tmp_path / "a.json", OLD)
    a, b = store(tmp_path, "a", records), store(tmp_path, "b", records)
    asked: list[TokenRecord] = []

    async def refresh(record: TokenRecord) -> TokenRecord:
        asked.append(record)
        await asyncio.sleep(0)
        return NEW

    first, second = await asyncio.gather(a.renew("a-old", refresh, None), b.renew("a-old", refresh, None))
    assert first == second == NEW and asked == [OLD]  # the second found the new tokens and took them
    assert shared(records) == NEW
    assert read_tokens(tmp_path / "a.json") == NEW  # the renewer's file keeps a copy


async def test_no_renewal_without_the_shared_records(tmp_path):
    records = MemoryRecords()
    write_tokens(tmp_path / "a.json", OLD)
    records.down = True

    async def refresh(record: TokenRecord) -> TokenRecord:
        raise AssertionError("no refresh the other replicas cannot hear of")

    with pytest.raises(SharedRecordsUnavailable):
        await store(tmp_path, "a", records).renew("a-old", refresh, None)
