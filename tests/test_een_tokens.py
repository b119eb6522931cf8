"""The EEN API v3 token file (``sources.een_tokens``): atomic writes, modes, the warning, the
refresh lock across tasks and processes (issue 13, items 2, 7 and 8)."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mjpeg_proxy.sources.een_tokens import (
    TokenFileError,
    TokenRecord,
    commit_tokens,
    file_signature,
    lock_path,
    read_tokens,
    refresh_once,
    stage_tokens,
    token_lock,
    write_tokens,
)
from tests.processes import REPO_ROOT

OLD = TokenRecord("access-old-1111", "refresh-old-2222", 1_800_000_000.0, "api.c001.eagleeyenetworks.com")
NEW = TokenRecord("access-new-3333", "refresh-new-4444", 1_800_043_198.0, "api.c002.eagleeyenetworks.com", 8443)
WAIT_S = 5.0


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def lock_is_held(path: Path) -> bool:
    """Whether someone holds ``path``'s refresh lock (probed on a descriptor of our own)."""
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_record_round_trips_with_mode_0600_whatever_the_umask(tmp_path):
    path = tmp_path / "een.json"
    old_umask = os.umask(0)
    try:
        write_tokens(path, NEW)
    finally:
        os.umask(old_umask)
    assert read_tokens(path) == NEW
    assert mode_of(path) == 0o600
    assert json.loads(path.read_text())["httpsBaseUrl"] == {"hostname": "api.c002.eagleeyenetworks.com", "port": 8443}


def test_rewriting_a_loose_file_makes_it_0600(tmp_path):
    path = tmp_path / "een.json"
    path.write_text(json.dumps(OLD.to_json()))
    path.chmod(0o644)
    write_tokens(path, NEW)
    assert mode_of(path) == 0o600
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_a_crash_between_write_and_rename_leaves_the_old_file(tmp_path):
    path = tmp_path / "een.json"
    write_tokens(path, OLD)
    staged = stage_tokens(path, NEW)  # then the process dies: commit_tokens never runs
    assert read_tokens(path) == OLD
    assert staged.parent == tmp_path and staged.name.startswith(".een.json.") and mode_of(staged) == 0o600
    commit_tokens(staged, path)
    assert read_tokens(path) == NEW
    assert not staged.exists()


def test_a_process_killed_while_writing_leaves_the_old_file_or_the_new(tmp_path):
    path = tmp_path / "een.json"
    write_tokens(path, OLD)
    child = (
        "import os, sys\n"
        "from mjpeg_proxy.sources.een_tokens import TokenRecord, stage_tokens\n"
        "stage_tokens(sys.argv[1], TokenRecord('a-new', 'r-new', 1.0, 'h'))\n"
        "os._exit(9)\n"
    )
    done = subprocess.run([sys.executable, "-c", child, str(path)], cwd=REPO_ROOT, timeout=WAIT_S, check=False)
    assert done.returncode == 9
    assert read_tokens(path) == OLD


def test_no_file_is_no_login_and_a_broken_one_says_so_without_its_content(tmp_path):
    path = tmp_path / "een.json"
    assert read_tokens(path) is None
    path.write_text('{"access_token": "leaky-token-5555", "refresh_token": 7}')
    with pytest.raises(TokenFileError, match="refresh_token") as info:
        read_tokens(path)
    assert "leaky-token-5555" not in str(info.value) and "\n" not in str(info.value)
    path.write_text("leaky-token-5555 not json")
    with pytest.raises(TokenFileError, match="een-login") as info:
        read_tokens(path)
    assert "leaky-token-5555" not in str(info.value)


def test_writing_into_a_missing_folder_is_one_line(tmp_path):
    with pytest.raises(TokenFileError, match="cannot write"):
        write_tokens(tmp_path / "absent" / "een.json", NEW)


@pytest.mark.parametrize("mode, warned", [(0o600, False), (0o400, False), (0o640, True), (0o604, True)])
def test_reading_warns_when_others_can_read_the_file(tmp_path, caplog, mode, warned):
    path = tmp_path / "een.json"
    write_tokens(path, OLD)
    path.chmod(mode)
    with caplog.at_level(logging.WARNING, logger="mjpeg_proxy.sources.een_tokens"):
        assert read_tokens(path) == OLD
    assert ("chmod 600" in caplog.text) is warned
    assert OLD.access_token not in caplog.text and OLD.refresh_token not in caplog.text


def test_the_record_repr_holds_no_token():
    assert "access-new" not in repr(NEW) and "refresh-new" not in repr(NEW)


async def test_two_tasks_take_the_lock_one_after_the_other(tmp_path):
    path = tmp_path / "een.json"
    order: list[str] = []
    release_first, first_in = asyncio.Event(), asyncio.Event()

    async def holder(name: str, release: asyncio.Event | None) -> None:
        async with token_lock(path):
            order.append(f"{name} in")
            first_in.set()
            if release is not None:
                await release.wait()
            order.append(f"{name} out")

    first = asyncio.create_task(holder("first", release_first))
    await asyncio.wait_for(first_in.wait(), WAIT_S)
    second = asyncio.create_task(holder("second", None))
    assert lock_is_held(path)
    release_first.set()
    await asyncio.wait_for(asyncio.gather(first, second), WAIT_S)
    assert order == ["first in", "first out", "second in", "second out"]
    assert not lock_is_held(path)


async def test_a_task_cancelled_while_waiting_for_the_lock_leaves_it_free(tmp_path):
    path = tmp_path / "een.json"
    release = asyncio.Event()
    held = asyncio.Event()

    async def hold() -> None:
        async with token_lock(path):
            held.set()
            await release.wait()

    async def wait_for_lock() -> None:
        async with token_lock(path):
            pytest.fail("the cancelled task got the lock")

    holder = asyncio.create_task(hold())
    await asyncio.wait_for(held.wait(), WAIT_S)
    waiter = asyncio.create_task(wait_for_lock())
    await asyncio.sleep(0)
    waiter.cancel()
    release.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await waiter
    async with asyncio.timeout(WAIT_S), token_lock(path):
        pass


async def test_another_process_holding_the_lock_makes_us_wait(tmp_path):
    path = tmp_path / "een.json"
    child = (
        "import asyncio, sys\n"
        "from mjpeg_proxy.sources.een_tokens import token_lock\n"
        "async def hold():\n"
        "    async with token_lock(sys.argv[1]):\n"
        "        print('held', flush=True)\n"
        "        sys.stdin.readline()\n"
        "asyncio.run(hold())\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        child,
        str(path),
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        assert await asyncio.wait_for(process.stdout.readline(), WAIT_S) == b"held\n"
        ours = asyncio.create_task(_take(path))
        assert lock_is_held(path) and not ours.done()
        process.stdin.write(b"go\n")
        await process.stdin.drain()
        await asyncio.wait_for(ours, WAIT_S)
        assert await asyncio.wait_for(process.wait(), WAIT_S) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _take(path: Path) -> None:
    async with token_lock(path):
        pass


async def test_two_tasks_refused_with_one_token_refresh_it_once(tmp_path):
    path = tmp_path / "een.json"
    write_tokens(path, OLD)
    refreshes: list[str] = []

    async def refresh(record: TokenRecord) -> TokenRecord:
        refreshes.append(record.refresh_token)
        await asyncio.sleep(0)  # the other task runs meanwhile, and waits for the lock
        return NEW

    results = await asyncio.wait_for(
        asyncio.gather(*(refresh_once(path, OLD.access_token, refresh) for _ in range(3))), WAIT_S
    )
    assert refreshes == [OLD.refresh_token]
    assert results == [NEW, NEW, NEW]
    assert read_tokens(path) == NEW


async def test_a_failed_refresh_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "een.json"
    write_tokens(path, OLD)

    async def refused(record: TokenRecord) -> TokenRecord:
        raise PermissionError("refused")

    with pytest.raises(PermissionError):
        await refresh_once(path, OLD.access_token, refused)
    assert read_tokens(path) == OLD
    with pytest.raises(TokenFileError, match="een-login"):
        await refresh_once(tmp_path / "none.json", "x", refused)


@pytest.mark.parametrize(
    "lifetime_s, issued, refresh_after_s",
    [
        (43198.0, True, 43198.0 - 300),  # a 12-hour token: 5 minutes before it expires
        (600.0, True, 300.0),  # 10 minutes: 5 minutes before is also half its lifetime
        (120.0, True, 60.0),  # a short one: at half its lifetime
        (43198.0, False, 43198.0 - 300),  # issue time unknown: the margin alone
    ],
)
def test_the_access_token_is_refreshed_minutes_before_expiry_or_at_half_its_lifetime(
    lifetime_s, issued, refresh_after_s
):
    record = TokenRecord("a", "r", 1000.0 + lifetime_s, "h", issued_at=1000.0 if issued else None)
    assert record.refresh_at(300.0) == 1000.0 + refresh_after_s


def test_the_issue_time_is_kept_in_the_file(tmp_path):
    record = TokenRecord("a", "r", 2000.0, "h", 443, issued_at=1000.0)
    write_tokens(tmp_path / "t.json", record)
    assert read_tokens(tmp_path / "t.json") == record


async def test_tokens_held_in_memory_only_count_when_newer_than_the_file_and_are_written(tmp_path):
    path = tmp_path / "t.json"
    dead = TokenRecord("a-dead", "r-dead", 2000.0, "h", issued_at=1000.0)
    held = TokenRecord("a-held", "r-held", 3000.0, "h", issued_at=2000.0)
    write_tokens(path, dead)
    asked: list[TokenRecord] = []

    async def refresh(record: TokenRecord) -> TokenRecord:
        asked.append(record)
        return TokenRecord("a-new", "r-new", 4000.0, "h", issued_at=3000.0)

    # The held record is due: it, not the file's older one, is refreshed.
    new = await refresh_once(path, "a-held", refresh, held)
    assert asked == [held] and read_tokens(path) == new
    # Another failed token with a held record older than the file: the file's is taken.
    assert await refresh_once(path, "a-other", refresh, held) == new and asked == [held]


async def test_a_held_record_newer_than_the_file_is_written_when_another_token_failed(tmp_path):
    path = tmp_path / "t.json"
    write_tokens(path, TokenRecord("a-dead", "r-dead", 2000.0, "h", issued_at=1000.0))
    held = TokenRecord("a-held", "r-held", 3000.0, "h", issued_at=2000.0)

    async def refresh(record: TokenRecord) -> TokenRecord:
        raise AssertionError("no refresh: the held tokens are good")

    assert await refresh_once(path, "a-dead", refresh, held) == held
    assert read_tokens(path) == held


def test_the_file_signature_changes_when_its_mode_is_mended(tmp_path):
    path = tmp_path / "t.json"
    write_tokens(path, NEW)
    os.chmod(path, 0)
    before = file_signature(path)
    os.chmod(path, 0o600)
    assert file_signature(path) != before and file_signature(tmp_path / "none.json") is None
