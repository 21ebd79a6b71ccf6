"""FileTokenStore: a cross-platform lock (filelock) and encryption at rest (issue 17, item 8)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import filelock
import httpx2
import pytest

from keyturn.client import OAuthToken, StoreLockTimeoutError, TokenManager
from keyturn.client.stores.file import FileTokenStore, generate_key
from keyturn.testing import FakeTokenServer

TOKEN = OAuthToken(access_token="at-secret-value", refresh_token="rt-secret-value", expires_at=2e9)


def test_no_posix_only_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The store itself never imports fcntl: filelock picks the platform's lock."""
    monkeypatch.setitem(sys.modules, "fcntl", None)  # as on Windows: import fails
    store = FileTokenStore(tmp_path)
    store.save("k", TOKEN)
    assert store.load("k") == TOKEN
    assert isinstance(store.lock("k"), filelock.BaseFileLock)


def test_the_lock_may_be_released_by_another_thread(tmp_path: Path) -> None:
    """The async shell enters it in a worker thread and may leave it from the loop's."""
    store = FileTokenStore(tmp_path)
    lock = store.lock("k")
    entered = threading.Thread(target=lock.__enter__)
    entered.start()
    entered.join()
    assert lock.is_locked
    lock.__exit__(None, None, None)
    assert not lock.is_locked
    with store.lock("k"):  # and it is free again
        pass


def test_encrypted_at_rest(tmp_path: Path) -> None:
    key = generate_key()
    store = FileTokenStore(tmp_path, encryption_key=key)
    store.save("k", TOKEN)
    raw = (tmp_path / "k.json").read_bytes()
    assert b"secret-value" not in raw
    assert b"access_token" not in raw
    assert store.load("k") == TOKEN
    assert FileTokenStore(tmp_path, encryption_key=key).load("k") == TOKEN
    assert "encrypted" in repr(store)


def test_a_wrong_key_or_a_plain_file_reads_as_no_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    FileTokenStore(tmp_path, encryption_key=generate_key()).save("k", TOKEN)
    assert FileTokenStore(tmp_path, encryption_key=generate_key()).load("k") is None
    assert "does not open" in caplog.text
    assert FileTokenStore(tmp_path).load("k") is None  # ciphertext is not JSON
    FileTokenStore(tmp_path).save("plain", TOKEN)
    assert FileTokenStore(tmp_path, encryption_key=generate_key()).load("plain") is None


def test_key_rotation(tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    FileTokenStore(tmp_path, encryption_key=old).save("k", TOKEN)
    rotated = FileTokenStore(tmp_path, encryption_key=[new, old])
    assert rotated.load("k") == TOKEN  # the old key still opens it
    rotated.save("k", TOKEN)
    assert FileTokenStore(tmp_path, encryption_key=new).load("k") == TOKEN


@pytest.mark.parametrize("bad", ["short", b"", []])
def test_a_bad_key_is_refused_at_once(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="encryption_key"):
        FileTokenStore(tmp_path, encryption_key=bad)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_async_manager_with_an_encrypted_store(tmp_path: Path) -> None:
    server = FakeTokenServer()
    store = FileTokenStore(tmp_path, encryption_key=generate_key())
    async with httpx2.AsyncClient(transport=server.transport()) as client:
        manager = TokenManager(server.client_credentials(), store=store, async_http_client=client)
        token = await manager.aget_token()
        other = TokenManager(server.client_credentials(), store=store, async_http_client=client)
        assert (await other.aget_token()) == token  # read back through the lock, decrypted
    assert server.token_requests == 1


def test_a_lock_held_too_long_is_keyturns_error_naming_the_fix(tmp_path: Path) -> None:
    holder = FileTokenStore(tmp_path).lock("k")
    holder.acquire()
    try:
        waiter = FileTokenStore(tmp_path, lock_timeout=0.05)
        with (
            pytest.raises(StoreLockTimeoutError, match=r"lock_timeout=") as caught,
            waiter.lock("k"),
        ):
            pytest.fail("the lock is held by another")
        assert isinstance(caught.value, TimeoutError)
        assert "k.lock" in str(caught.value)
    finally:
        holder.release()
    with FileTokenStore(tmp_path, lock_timeout=0.05).lock("k"):  # free again
        pass
