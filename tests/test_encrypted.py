"""The encrypted store wrapper: keys, tampering, rotation, plaintext and reencrypt.

The whole store contract through the wrapper is the conformance suite's
(tests/conformance/test_wrapped_stores.py); this module tests what encryption adds. Stores
here are real memory and SQLite stores; raw bytes are read from the inner store directly.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest

from coatcheck import (
    Config,
    ConfigError,
    SessionManager,
    open_async_store,
    open_store,
)
from coatcheck.crypto import OVERHEAD, Keyring, new_key
from coatcheck.ids import storage_key
from coatcheck.session import AsyncSessionManager
from coatcheck.stores.base import AsyncStore, Store, Stored
from coatcheck.stores.memory import AsyncMemoryStore, MemoryStore
from coatcheck.wrappers import (
    UNREADABLE,
    AsyncEncryptedStore,
    EncryptedStore,
    RecordCipher,
    reencrypt,
    reencrypt_async,
)
from coatcheck.wrappers.encrypted import PURPOSE

MARKER = "coat-check-marker-7f3a"
OLD, NEW, OTHER = new_key(), new_key(), new_key()  # random per process: not in test ids


def manager(store: Store, **options: Any) -> SessionManager:
    return SessionManager(store, Config(gc_probability=0, cookie_secure=True, **options))


def new_session(m: SessionManager, data: dict[str, Any] | None = None) -> str:
    s = m.start()
    s.update(data or {"secret": MARKER})
    s.write_close()
    sid: str = s.id
    return sid


def raw(store: EncryptedStore, sid: str) -> Stored:
    got = store.inner.read(storage_key(sid))
    assert isinstance(got, Stored)
    return got


def sealed_under(payload: bytes, key: str) -> bool:
    """Whether ``payload`` names ``key`` as its sealing key (the header, not a decryption)."""
    return RecordCipher([key]).is_current(payload)


def security_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "coatcheck.security"]


# --- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "words"),
    [
        (b"\x01" * 31, "31 bytes"),
        (base64.urlsafe_b64encode(b"\x01" * 16).decode(), "16 bytes"),
        ("", "not base64url"),
        ("not base64 at all!", "not base64url"),
        ("abcde", "not valid base64url"),
        (42, "bytes or base64url"),
    ],
)
def test_an_unusable_key_is_refused_at_construction(key: Any, words: str) -> None:
    builds = (
        lambda: EncryptedStore(MemoryStore(), [NEW, key]),
        lambda: AsyncEncryptedStore(AsyncMemoryStore(), [NEW, key]),
    )
    for build in builds:
        with pytest.raises(ConfigError, match=words) as info:
            build()
        assert "encryption key 2" in str(info.value)  # its position, never its value
        assert NEW not in str(info.value)


def test_an_empty_key_list_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least one key"):
        EncryptedStore(MemoryStore(), [])


def test_raw_bytes_and_base64url_text_are_the_same_key() -> None:
    material = bytes(range(32))
    text = base64.urlsafe_b64encode(material).decode().rstrip("=")
    padded = base64.urlsafe_b64encode(material).decode()
    inner = MemoryStore()
    sid = new_session(manager(EncryptedStore(inner, material)))
    for key in (text, padded, material + b""):
        s = manager(EncryptedStore(inner, key)).start(sid)
        assert s["secret"] == MARKER
        s.abort()


def test_a_keyring_binds_purpose_and_associated_data() -> None:
    ring = Keyring([NEW], purpose="a")
    sealed = ring.seal(b"data", b"here")
    assert len(sealed) == len(b"data") + OVERHEAD
    assert ring.open(sealed, b"here") == b"data"
    assert ring.open(sealed, b"there") is None
    assert Keyring([NEW], purpose="b").open(sealed, b"here") is None  # same key, other use
    assert ring.seal(b"data", b"here") != sealed  # a fresh nonce each time


# --- what the store holds --------------------------------------------------------------------


def test_the_inner_store_holds_no_plaintext() -> None:
    store = EncryptedStore(MemoryStore(), [NEW])
    sid = new_session(manager(store), {"secret": MARKER, "user": "ann@example.org"})
    stored = raw(store, sid)
    assert MARKER.encode() not in stored.payload and b"ann@example.org" not in stored.payload
    assert b'"v":1' not in stored.payload  # not even the record header
    assert stored.payload[0] == 0xC1 and sealed_under(stored.payload, NEW)
    s = manager(store).start(sid)
    assert s["secret"] == MARKER  # and through the wrapper it reads back
    s.abort()


def test_an_unchanged_session_is_touched_not_sealed_again() -> None:
    store = EncryptedStore(MemoryStore(), [NEW])
    m = manager(store, touch_threshold=0)
    sid = new_session(m)
    before = raw(store, sid)
    s = m.start(sid)
    s.write_close()  # nothing changed: a touch, not a rewrite
    after = raw(store, sid)
    assert after.payload == before.payload and after.version == before.version


# --- records that must not be trusted --------------------------------------------------------


def test_a_record_under_an_unknown_key_gives_a_fresh_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner = MemoryStore()
    sid = new_session(manager(EncryptedStore(inner, [OTHER])))
    caplog.set_level(logging.WARNING)
    s = manager(EncryptedStore(inner, [NEW, OLD])).start(sid)
    assert s.is_new and s.id != sid and "secret" not in s
    s.abort()
    assert inner.read(storage_key(sid)) is None  # the engine discarded the record
    messages = security_messages(caplog)
    assert any("did not decrypt" in m for m in messages)
    assert not any(sid in m or storage_key(sid) in m for m in messages)  # no ids logged


@pytest.mark.parametrize("where", ["format", "key id", "nonce", "ciphertext", "tag"])
def test_a_flipped_byte_anywhere_is_rejected(where: str) -> None:
    store = EncryptedStore(MemoryStore(), [NEW])
    sid = new_session(manager(store))
    stored = raw(store, sid)
    at = {"format": 0, "key id": 2, "nonce": 8, "ciphertext": 30, "tag": -1}[where]
    flipped = bytearray(stored.payload)
    flipped[at] ^= 0x01
    store.inner.write(storage_key(sid), bytes(flipped), stored.expires_at)
    assert store.read(storage_key(sid)) == Stored(UNREADABLE, stored.expires_at, 2)
    s = manager(store).start(sid)
    assert s.is_new and "secret" not in s
    s.abort()


def test_a_truncated_or_empty_record_is_rejected() -> None:
    store = EncryptedStore(MemoryStore(), [NEW])
    sid = new_session(manager(store))
    stored = raw(store, sid)
    for cut in (stored.payload[: OVERHEAD - 1], stored.payload[:-1], b"", b"\xc1"):
        store.inner.write(storage_key(sid), cut, stored.expires_at)
        got = store.read(storage_key(sid))
        assert isinstance(got, Stored) and got.payload == UNREADABLE
    s = manager(store).start(sid)
    assert s.is_new and "secret" not in s
    s.abort()


def test_a_record_moved_to_another_session_is_rejected() -> None:
    """Associated data binds a record to its storage key: a copy under another key is junk."""
    store = EncryptedStore(MemoryStore(), [NEW])
    m = manager(store, fingerprint=())  # no fingerprint: only encryption stands in the way
    victim = new_session(m, {"user": "admin"})
    attacker = new_session(m, {"user": "mallory"})
    stolen = raw(store, victim)
    store.inner.write(storage_key(attacker), stolen.payload, stolen.expires_at)
    got = store.read(storage_key(attacker))
    assert isinstance(got, Stored) and got.payload == UNREADABLE
    s = m.start(attacker)
    assert s.is_new and "user" not in s
    s.abort()
    v = m.start(victim)  # the original is untouched
    assert v["user"] == "admin"
    v.abort()


def test_a_header_relabelled_with_another_key_id_is_rejected() -> None:
    """The key id is authenticated: swapping it for another configured key's id fails."""
    inner = MemoryStore()
    sid = new_session(manager(EncryptedStore(inner, [OLD])))
    both = EncryptedStore(inner, [NEW, OLD])
    stored = raw(both, sid)
    new_id = Keyring([NEW], purpose=PURPOSE).key_ids[0]
    relabelled = stored.payload[:1] + new_id + stored.payload[5:]
    inner.write(storage_key(sid), relabelled, stored.expires_at)
    got = both.read(storage_key(sid))
    assert isinstance(got, Stored) and got.payload == UNREADABLE


# --- plaintext from before encryption --------------------------------------------------------


def test_plaintext_records_are_refused_by_default(caplog: pytest.LogCaptureFixture) -> None:
    inner = MemoryStore()
    sid = new_session(manager(inner))  # written before encryption was turned on
    caplog.set_level(logging.WARNING)
    s = manager(EncryptedStore(inner, [NEW])).start(sid)
    assert s.is_new and "secret" not in s
    s.abort()
    assert any("unencrypted session record was refused" in m for m in security_messages(caplog))


def test_plaintext_records_are_read_in_a_migration_window_and_sealed_on_write() -> None:
    inner = MemoryStore()
    sid = new_session(manager(inner))
    store = EncryptedStore(inner, [NEW], read_plaintext=True)
    s = manager(store).start(sid)
    assert not s.is_new and s["secret"] == MARKER
    s["more"] = 1
    s.write_close()
    assert sealed_under(raw(store, sid).payload, NEW)
    assert MARKER.encode() not in raw(store, sid).payload


def test_the_migration_window_never_turns_a_bad_sealed_record_into_plaintext() -> None:
    store = EncryptedStore(MemoryStore(), [NEW], read_plaintext=True)
    sid = new_session(manager(store))
    stored = raw(store, sid)
    store.inner.write(storage_key(sid), stored.payload[:-1], stored.expires_at)
    got = store.read(storage_key(sid))
    assert isinstance(got, Stored) and got.payload == UNREADABLE


# --- rotation and reencrypt ------------------------------------------------------------------


def test_a_new_key_reads_old_records_and_writes_them_back_under_itself() -> None:
    inner = MemoryStore()
    sid = new_session(manager(EncryptedStore(inner, [OLD])))
    rotated = EncryptedStore(inner, [NEW, OLD])
    s = manager(rotated).start(sid)
    assert s["secret"] == MARKER
    s["seen"] = True
    s.write_close()
    assert sealed_under(raw(rotated, sid).payload, NEW)
    only_new = manager(EncryptedStore(inner, [NEW])).start(sid)  # OLD is no longer needed
    assert only_new["seen"] is True
    only_new.abort()


def test_a_removed_key_gives_a_fresh_session() -> None:
    inner = MemoryStore()
    sid = new_session(manager(EncryptedStore(inner, [OLD])))
    s = manager(EncryptedStore(inner, [NEW])).start(sid)
    assert s.is_new and "secret" not in s
    s.abort()


def test_reencrypt_moves_every_record_under_the_newest_key_keeping_expiry() -> None:
    inner = MemoryStore()
    old = manager(EncryptedStore(inner, [OLD]))
    sids = [new_session(old, {"n": i}) for i in range(5)]
    current = new_session(manager(EncryptedStore(inner, [NEW])), {"n": 99})
    before = {sid: raw(EncryptedStore(inner, [NEW]), sid) for sid in [*sids, current]}
    rotated = EncryptedStore(inner, [NEW, OLD])
    assert reencrypt(rotated) == 5  # the one already under NEW is left alone
    assert reencrypt(rotated) == 0  # nothing left to do
    only_new = EncryptedStore(inner, [NEW])
    for i, sid in enumerate(sids):
        after = raw(only_new, sid)
        assert after.expires_at == before[sid].expires_at
        assert after.version == before[sid].version + 1
        s = manager(only_new).start(sid)
        assert s["n"] == i
        s.abort()
    assert raw(only_new, current) == before[current]


def test_reencrypt_takes_the_raw_store_and_keys_too() -> None:
    inner = MemoryStore()
    sid = new_session(manager(EncryptedStore(inner, [OLD])))
    assert reencrypt(inner, [NEW, OLD]) == 1
    assert sealed_under(raw(EncryptedStore(inner, [NEW]), sid).payload, NEW)
    with pytest.raises(ConfigError, match="needs the keys"):
        reencrypt(inner)


def test_reencrypt_leaves_unreadable_records_alone(caplog: pytest.LogCaptureFixture) -> None:
    inner = MemoryStore()
    lost = new_session(manager(EncryptedStore(inner, [OTHER])))
    plain = new_session(manager(inner))
    before = {sid: inner.read(storage_key(sid)) for sid in (lost, plain)}
    caplog.set_level(logging.WARNING)
    assert reencrypt(EncryptedStore(inner, [NEW, OLD])) == 0
    assert {sid: inner.read(storage_key(sid)) for sid in (lost, plain)} == before
    assert any("2 session record(s) did not decrypt" in r.getMessage() for r in caplog.records)


def test_reencrypt_seals_plaintext_records_when_asked() -> None:
    inner = MemoryStore()
    sid = new_session(manager(inner))
    assert reencrypt(EncryptedStore(inner, [NEW]), read_plaintext=True) == 1
    s = manager(EncryptedStore(inner, [NEW])).start(sid)  # readable with plaintext off
    assert s["secret"] == MARKER
    s.abort()


class _RacedStore(MemoryStore):
    """A real memory store in which another request writes right after reencrypt reads."""

    def __init__(self, writer: EncryptedStore | None = None) -> None:
        super().__init__()
        self.writer = writer
        self.raced: str | None = None

    def read(self, key: str, lock: Any = None) -> Any:
        got = super().read(key, lock)
        if self.writer is not None and self.raced is None and lock is None:
            self.raced = key
            self.writer.write(key, b"written meanwhile", 2**31)
        return got


def test_reencrypt_never_clobbers_a_concurrent_write() -> None:
    inner = _RacedStore()
    sid = new_session(manager(EncryptedStore(inner, [OLD])))
    inner.writer = EncryptedStore(inner, [OLD])  # a server not rotated yet
    assert reencrypt(EncryptedStore(inner, [NEW, OLD])) == 0  # the write meanwhile won
    got = EncryptedStore(inner, [NEW, OLD]).read(storage_key(sid))
    assert isinstance(got, Stored) and got.payload == b"written meanwhile"


async def test_async_wrapper_and_reencrypt_async() -> None:
    inner = AsyncMemoryStore()
    old = AsyncSessionManager(
        AsyncEncryptedStore(inner, [OLD]), Config(gc_probability=0, cookie_secure=True)
    )
    s = await old.start()
    s["secret"] = MARKER
    await s.write_close()
    got = await inner.read(storage_key(s.id))
    assert isinstance(got, Stored) and MARKER.encode() not in got.payload
    assert await reencrypt_async(AsyncEncryptedStore(inner, [NEW, OLD])) == 1
    fresh = AsyncSessionManager(
        AsyncEncryptedStore(inner, [NEW]), Config(gc_probability=0, cookie_secure=True)
    )
    again = await fresh.start(s.id)
    assert again["secret"] == MARKER
    await again.abort()


# --- what passes through ---------------------------------------------------------------------


def test_the_managers_clock_reaches_the_inner_store() -> None:
    inner = MemoryStore()
    store = EncryptedStore(inner, [NEW])
    now = [1_000_000.0]

    def clock() -> float:
        return now[0]

    m = SessionManager(store, Config(gc_probability=0, idle_timeout=60), clock=clock)
    assert inner.clock is clock and store.clock is clock
    sid = new_session(m)
    assert raw(store, sid).expires_at == 1_000_060.0
    now[0] += 61
    s = m.start(sid)  # expired on the injected clock
    assert s.is_new and s.is_expired
    s.abort()


def test_contract_calls_pass_through() -> None:
    inner = MemoryStore()
    store = EncryptedStore(inner, [NEW])
    sid = new_session(manager(store))
    key = storage_key(sid)
    assert store.validate_id(key) and store.count() == 1
    [meta] = list(store.scan())
    assert meta.key == key and meta.size == len(raw(store, sid).payload)
    store.update_timestamp(key, 2**31)
    assert raw(store, sid).expires_at == 2**31
    store.destroy(key)
    assert inner.read(key) is None and not store.validate_id(key)
    assert store.shared is inner.shared and store.expires_itself is inner.expires_itself
    assert len(store.create_id(32)) == 43


def test_create_schema_reaches_the_inner_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC_TEST_KEYS", NEW)
    wrapped = open_store(f"sqlite:///{tmp_path}/s.db?encrypt=env:CC_TEST_KEYS")
    assert isinstance(wrapped, EncryptedStore)
    assert getattr(wrapped, "create_schema", None) is not None
    assert not hasattr(EncryptedStore(MemoryStore(), [NEW]), "create_schema")


# --- by URL ----------------------------------------------------------------------------------


def test_a_url_option_turns_encryption_on_for_sync_and_async(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC_TEST_KEYS", f" {NEW} , {OLD}\n")
    url = f"sqlite:///{tmp_path}/s.db?table=t1&encrypt=env:CC_TEST_KEYS"
    sync = open_store(url)
    asynchronous = open_async_store(url)
    assert isinstance(sync, EncryptedStore) and isinstance(asynchronous, AsyncEncryptedStore)
    assert isinstance(sync.inner, Store) and isinstance(asynchronous.inner, AsyncStore)
    assert sync.cipher.keyring.key_ids == Keyring([NEW, OLD], purpose=PURPOSE).key_ids
    assert not sync.cipher.read_plaintext
    plain = open_store(url + "&encrypt_read_plaintext=true")
    assert isinstance(plain, EncryptedStore) and plain.cipher.read_plaintext
    assert not isinstance(open_store(f"sqlite:///{tmp_path}/s.db"), EncryptedStore)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("encrypt=THE-KEY", "takes env:VARIABLE"),
        ("encrypt=env:", "takes env:VARIABLE"),
        ("encrypt=env:CC_TEST_UNSET_VARIABLE", "CC_TEST_UNSET_VARIABLE holds no encryption keys"),
        ("encrypt=env:CC_TEST_SHORT_KEY", "key 1 is 16 bytes"),
        ("encrypt_read_plaintext=true", "needs encrypt=env:VARIABLE"),
        ("encrypt=env:CC_TEST_KEYS&encrypt_read_plaintext=maybe", "must be true or false"),
        ("encrypt=env:CC_TEST_KEYS&encrypt=env:CC_TEST_KEYS", "given twice"),
    ],
)
def test_a_bad_encrypt_option_is_a_config_error(
    query: str, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC_TEST_KEYS", NEW)
    monkeypatch.setenv("CC_TEST_SHORT_KEY", base64.urlsafe_b64encode(b"k" * 16).decode())
    monkeypatch.delenv("CC_TEST_UNSET_VARIABLE", raising=False)
    query = query.replace("THE-KEY", NEW)
    for opener in (open_store, open_async_store):
        with pytest.raises(ConfigError, match=words) as info:
            opener(f"memory://?{query}")
        assert NEW not in str(info.value)  # a key never shows in a message


def test_split_url_keeps_every_other_option_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    from coatcheck.wrappers.encrypted import split_url

    monkeypatch.setenv("CC_TEST_KEYS", NEW)
    url = "redis://u:p%3Fw@h:1/0?prefix=a%3Ab:&encrypt=env:CC_TEST_KEYS&connect_timeout=2"
    left, encryption = split_url(url)
    assert left == "redis://u:p%3Fw@h:1/0?prefix=a%3Ab:&connect_timeout=2"
    assert encryption is not None
    assert split_url("memory://?encrypt=env:CC_TEST_KEYS")[0] == "memory://"
    assert split_url("sqlite:///x.db?table=t") == ("sqlite:///x.db?table=t", None)


def test_lock_hand_over_of_the_inner_store_reaches_waiters() -> None:
    """A waiter behind the wrapper sleeps until the release, as on the bare store."""

    class Notifying(MemoryStore):
        def wait_for_release(self, key: str, timeout: float) -> bool:
            return True

    inner = Notifying()
    wrapped = EncryptedStore(inner, [new_key()])
    assert wrapped.wait_for_release == inner.wait_for_release  # type: ignore[attr-defined]
    assert not hasattr(EncryptedStore(MemoryStore(), [new_key()]), "wait_for_release")
