"""Refresh tokens (rotation, reuse detection, the race) and revocation, in real stores.

The stores are those of tests/stores.py, each in a namespace of its own: memory and SQLite
here, Redis and PostgreSQL on the real servers (tests/services.py), and every other store
for the rotation/reuse core. The clock is injected (service and store alike), so expiry is
tested without sleeping.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from coatcheck.contract import Stored
from coatcheck.errors import ConfigError, InvalidToken, TokenReused
from coatcheck.stores import open_store
from coatcheck.tokens import AccessTokens, AsyncTokens, Key, TokenPair, Tokens
from coatcheck.tokens._records import family_key, parse_refresh, subject_key

from .services import require
from .stores import CASES, StoreCase

NOW = 1_800_000_000.0
BY_NAME = {case.name: case for case in CASES}
CORE = [name for name in ("memory", "sqlite", "redis", "postgresql") if name in BY_NAME]
RACERS = [name for name in ("sqlite", "redis", "postgresql") if name in BY_NAME]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def opened(case: StoreCase, tmp_path: Path) -> Iterator[str]:
    endpoint = case.endpoint()
    if endpoint is not None:
        require(*endpoint, case.name)
    url = case.make_url(tmp_path)
    try:
        yield url
    finally:
        if case.cleanup is not None:
            case.cleanup(url)


@pytest.fixture(params=CORE)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from opened(BY_NAME[request.param], tmp_path)


@pytest.fixture(params=[c.name for c in CASES])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from opened(BY_NAME[request.param], tmp_path)


@pytest.fixture(params=RACERS)
def race_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from opened(BY_NAME[request.param], tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def access(clock: Clock) -> AccessTokens:
    return AccessTokens(Key.generate("k1", "EdDSA"), issuer="auth", audience="api", clock=clock)


@pytest.fixture
def tokens(url: str, clock: Clock) -> Iterator[Tokens]:
    with Tokens(url, access(clock), refresh_lifetime=3600, family_lifetime=86400) as t:
        yield t


def refused(call: Any, *args: Any) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        call(*args)
    return caught.value


# --- login and rotation ---------------------------------------------------------------------


def test_login_gives_a_pair(tokens: Tokens) -> None:
    pair = tokens.login("ann", {"scope": "read"})
    assert isinstance(pair, TokenPair) and pair.expires_in == 900
    claims = tokens.verify(pair.access_token)
    assert claims["sub"] == "ann" and claims["scope"] == "read"
    family_id, secret = parse_refresh(pair.refresh_token)
    assert claims["sid"] == family_id
    assert len(secret) == 43  # 32 random bytes
    assert pair.as_dict()["token_type"] == "Bearer"
    assert pair.access_token not in repr(pair) and pair.refresh_token not in repr(pair)


def test_the_store_holds_hashes_only(tokens: Tokens) -> None:
    pair = tokens.login("ann")
    family_id, secret = parse_refresh(pair.refresh_token)
    stored = tokens.store.read(family_key(family_id))
    assert isinstance(stored, Stored)
    assert family_id.encode() not in stored.payload and secret.encode() not in stored.payload
    with pytest.raises(ValueError):
        tokens.store.read(family_id)  # not even a valid storage key


def test_refresh_rotates(any_url: str, clock: Clock) -> None:
    """On every store: each refresh gives a new pair, the old refresh token is used up, and
    using it again revokes the whole family."""
    with Tokens(any_url, access(clock)) as tokens:
        first = tokens.login("ann", {"role": "user"})
        clock.now += 10
        second = tokens.refresh(first.refresh_token)
        assert second.refresh_token != first.refresh_token
        claims = tokens.verify(second.access_token)
        assert claims["role"] == "user" and claims["sid"] == parse_refresh(first.refresh_token)[0]
        clock.now += 10
        third = tokens.refresh(second.refresh_token)
        with pytest.raises(TokenReused):
            tokens.refresh(first.refresh_token)  # reuse of a rotated token
        for pair in (first, second, third):
            refused(tokens.verify, pair.access_token)
        assert "revoked" in refused(tokens.refresh, third.refresh_token).reason


def test_reuse_revokes_the_whole_family_and_only_it(tokens: Tokens, clock: Clock) -> None:
    victim = tokens.login("ann")
    other = tokens.login("ann")  # the same user on another device
    clock.now += 5
    legit = tokens.refresh(victim.refresh_token)
    clock.now += 60
    error = refused(tokens.refresh, victim.refresh_token)  # the thief replays
    assert isinstance(error, TokenReused)
    assert "revoked" in refused(tokens.refresh, legit.refresh_token).reason
    assert refused(tokens.verify, legit.access_token).reason == "token revoked"
    assert refused(tokens.verify, victim.access_token).reason == "token revoked"
    assert tokens.verify(other.access_token)["sub"] == "ann"  # another login is untouched
    assert tokens.refresh(other.refresh_token).access_token


def test_a_replay_within_the_grace_is_refused_without_revoking(tokens: Tokens) -> None:
    pair = tokens.login("ann")
    winner = tokens.refresh(pair.refresh_token)
    error = refused(tokens.refresh, pair.refresh_token)  # same instant: a concurrent tab
    assert not isinstance(error, TokenReused) and "concurrent" in error.reason
    assert tokens.verify(winner.access_token)["sub"] == "ann"
    assert tokens.refresh(winner.refresh_token).access_token


def test_no_grace_means_immediate_reuse_detection(url: str, clock: Clock) -> None:
    with Tokens(url, access(clock), reuse_grace=0) as tokens:
        pair = tokens.login("ann")
        tokens.refresh(pair.refresh_token)
        with pytest.raises(TokenReused):
            tokens.refresh(pair.refresh_token)


def test_older_tokens_than_remembered_are_refused_without_revoking(url: str, clock: Clock) -> None:
    with Tokens(url, access(clock), remember_used=2) as tokens:
        chain = [tokens.login("ann")]
        for _ in range(4):
            clock.now += 10
            chain.append(tokens.refresh(chain[-1].refresh_token))
        error = refused(tokens.refresh, chain[0].refresh_token)
        assert not isinstance(error, TokenReused) and error.reason.startswith("unknown")
        with pytest.raises(TokenReused):
            tokens.refresh(chain[2].refresh_token)  # still remembered


def test_refresh_tokens_expire_unused_and_families_end(url: str, clock: Clock) -> None:
    with Tokens(url, access(clock), refresh_lifetime=100, family_lifetime=250) as tokens:
        idle = tokens.login("ann")
        clock.now += 101
        assert refused(tokens.refresh, idle.refresh_token).reason.startswith("unknown or expired")
        pair = tokens.login("ann")
        assert pair.refresh_expires_at == clock.now + 100
        for _ in range(2):
            clock.now += 90
            pair = tokens.refresh(pair.refresh_token)
        assert pair.refresh_expires_at == NOW + 101 + 250  # capped by the family's end
        clock.now += 90  # 270 s after login: the family's absolute lifetime is over
        assert refused(tokens.refresh, pair.refresh_token).reason.startswith("unknown or expired")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "x",
        "a.b",
        "." * 87,
        "A" * 87,
        "A" * 43 + "." + "A" * 42 + "=",
        "A" * 43 + ".." + "A" * 42,
        "A" * 43 + "." + "A" * 43 + "\n",
        "é" * 43 + "." + "A" * 43,
        None,
        b"A" * 87,
        12,
    ],
)
def test_malformed_refresh_tokens(tokens: Tokens, token: object) -> None:
    assert refused(tokens.refresh, token).reason == "malformed refresh token"


def test_unknown_and_forged_refresh_tokens(tokens: Tokens) -> None:
    pair = tokens.login("ann")
    family_id, secret = parse_refresh(pair.refresh_token)
    other = "B" * 43 if secret != "B" * 43 else "C" * 43
    forged = f"{family_id}.{other}"  # the family id alone (it is in the access token) is useless
    assert refused(tokens.refresh, forged).reason.startswith("unknown")
    assert tokens.refresh(pair.refresh_token).access_token  # and revoked nothing
    assert refused(tokens.refresh, f"{'A' * 43}.{secret}").reason.startswith("unknown")


def test_unreadable_family_record_is_refused(tokens: Tokens) -> None:
    pair = tokens.login("ann")
    key = family_key(parse_refresh(pair.refresh_token)[0])
    tokens.store.write(key, b"\x00not json", NOW + 3600)
    assert refused(tokens.refresh, pair.refresh_token).reason.startswith("unknown")


def test_options_are_checked(clock: Clock) -> None:
    with pytest.raises(ConfigError, match="refresh_lifetime"):
        Tokens("memory://", access(clock), refresh_lifetime=100, family_lifetime=10)
    with pytest.raises(ConfigError, match="remember_used"):
        Tokens("memory://", access(clock), remember_used=0)
    with pytest.raises(ConfigError, match="reuse_grace"):
        Tokens("memory://", access(clock), reuse_grace=-1)
    with pytest.raises(ConfigError, match="unknown store URL scheme"):
        Tokens("nope://", access(clock))


# --- the race -------------------------------------------------------------------------------
# Each racer reads the family, then waits at a barrier until every racer has read it: the
# worst interleaving (all hold the same version), every run, on the real store. Only the
# store's version check can then let exactly one through.

RACERS_COUNT = 8


def gate_reads(store: Any, key: str, barrier: threading.Barrier) -> None:
    """The store's first read of ``key`` returns only once every racer has made its own."""
    real = store.read
    waited = []

    def read(k: str, lock: Any = None) -> Any:
        result = real(k, lock)
        if k == key and not waited:
            waited.append(True)
            barrier.wait(timeout=30)
        return result

    store.read = read


def test_simultaneous_refreshes_one_wins_threads(race_url: str, clock: Clock) -> None:
    # each thread is another server: its own Tokens and store connection on the same URL
    keyset = access(clock)
    servers = [Tokens(race_url, keyset) for _ in range(RACERS_COUNT)]
    try:
        pair = servers[0].login("ann")
        key = family_key(parse_refresh(pair.refresh_token)[0])
        barrier = threading.Barrier(RACERS_COUNT)
        for server in servers:
            gate_reads(server.store, key, barrier)
        results: list[object] = [None] * RACERS_COUNT

        def run(i: int) -> None:
            try:
                results[i] = servers[i].refresh(pair.refresh_token)
            except InvalidToken as e:
                results[i] = e

        threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS_COUNT)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wins = [r for r in results if isinstance(r, TokenPair)]
        losses = [r for r in results if isinstance(r, InvalidToken)]
        assert len(wins) == 1 and len(losses) == RACERS_COUNT - 1, results
        assert all("concurrent" in e.reason for e in losses)
        assert not any(isinstance(e, TokenReused) for e in losses)
        # the winner's new tokens work: the losers revoked nothing
        fresh = Tokens(race_url, keyset)
        try:
            assert fresh.verify(wins[0].access_token)["sub"] == "ann"
            assert fresh.refresh(wins[0].refresh_token).access_token
        finally:
            fresh.close()
    finally:
        for server in servers:
            server.close()


async def test_simultaneous_refreshes_one_wins_asyncio(race_url: str, clock: Clock) -> None:
    keyset = access(clock)
    async with AsyncTokens(race_url, keyset) as tokens, AsyncTokens(race_url, keyset) as peer:
        pair = await tokens.login("ann")
        key = family_key(parse_refresh(pair.refresh_token)[0])
        barrier = asyncio.Barrier(RACERS_COUNT)
        for server in (tokens, peer):
            real = server.store.read

            async def read(k: str, lock: Any = None, real: Any = real) -> Any:
                result = await real(k, lock)
                if k == key:
                    await asyncio.wait_for(barrier.wait(), 30)
                return result

            server.store.read = read  # type: ignore[method-assign]
        calls = [(tokens if i % 2 else peer).refresh(pair.refresh_token) for i in range(8)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        wins = [r for r in results if isinstance(r, TokenPair)]
        assert len(wins) == 1, results
        losses = [r for r in results if r is not wins[0]]
        assert all(isinstance(r, InvalidToken) and "concurrent" in r.reason for r in losses)
        assert not any(isinstance(r, TokenReused) for r in results)
    async with AsyncTokens(race_url, keyset) as fresh:
        assert (await fresh.verify(wins[0].access_token))["sub"] == "ann"
        assert (await fresh.refresh(wins[0].refresh_token)).access_token


def test_simultaneous_refreshes_free_running(race_url: str, clock: Clock) -> None:
    """Without the gate: whatever the interleaving, one success and no revocation."""
    keyset = access(clock)
    servers = [Tokens(race_url, keyset) for _ in range(RACERS_COUNT)]
    try:
        pair = servers[0].login("ann")
        start = threading.Barrier(RACERS_COUNT)
        outcomes: list[object] = []

        def run(server: Tokens) -> None:
            start.wait(timeout=30)
            try:
                outcomes.append(server.refresh(pair.refresh_token))
            except InvalidToken as e:
                outcomes.append(e)

        threads = [threading.Thread(target=run, args=(s,)) for s in servers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wins = [r for r in outcomes if isinstance(r, TokenPair)]
        assert len(wins) == 1 and not any(isinstance(r, TokenReused) for r in outcomes)
        assert servers[0].refresh(wins[0].refresh_token).access_token
    finally:
        for server in servers:
            server.close()


# --- revocation -----------------------------------------------------------------------------


def test_revoke_by_jti(tokens: Tokens) -> None:
    a, b = tokens.login("ann"), tokens.login("ann")
    claims = tokens.verify(a.access_token)
    tokens.revoke(claims)
    assert refused(tokens.verify, a.access_token).reason == "token revoked"
    assert tokens.verify(b.access_token)["sub"] == "ann"
    assert tokens.access.verify(a.access_token)  # the signature alone knows nothing of it
    # the entry lives as long as the token would have, no longer
    stored = tokens.store.read(subject_key("ann"))
    assert isinstance(stored, Stored) and stored.expires_at == claims["exp"]


def test_revocation_is_seen_by_every_server(race_url: str, clock: Clock) -> None:
    keyset = access(clock)
    with Tokens(race_url, keyset) as one, Tokens(race_url, keyset) as two:
        pair = one.login("ann")
        claims = two.verify(pair.access_token)
        one.revoke(claims)
        assert refused(two.verify, pair.access_token).reason == "token revoked"  # next request


def test_concurrent_revocations_are_all_kept(race_url: str, clock: Clock) -> None:
    """Eight servers revoke eight tokens of one subject at once: the version check and its
    retries keep every entry (a blind write would keep only the last)."""
    keyset = access(clock)
    servers = [Tokens(race_url, keyset) for _ in range(RACERS_COUNT)]
    try:
        pairs = [servers[0].login("ann") for _ in range(RACERS_COUNT)]
        key = subject_key("ann")
        barrier = threading.Barrier(RACERS_COUNT)
        for server in servers:
            gate_reads(server.store, key, barrier)  # all read the record before any writes
        claims = [keyset.verify(p.access_token) for p in pairs]
        errors: list[BaseException] = []

        def run(i: int) -> None:
            try:
                servers[i].revoke(claims[i])
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS_COUNT)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
    finally:
        for server in servers:
            server.close()
    with Tokens(race_url, keyset) as fresh:
        for pair in pairs:
            assert refused(fresh.verify, pair.access_token).reason == "token revoked"


def test_revocation_entries_expire_with_the_token(tokens: Tokens, clock: Clock) -> None:
    old = tokens.login("ann")
    old_claims = tokens.verify(old.access_token)
    tokens.revoke(old_claims)
    clock.now += 600
    new = tokens.login("ann")
    tokens.revoke(tokens.verify(new.access_token))
    clock.now += 400  # the first token has expired: its entry is dropped at the next write
    tokens.revoke(tokens.verify(tokens.login("ann").access_token))
    stored = tokens.store.read(subject_key("ann"))
    assert isinstance(stored, Stored)
    jtis = orjson.loads(stored.payload)["jtis"]
    assert old_claims["jti"] not in jtis
    assert len(jtis) == 2


def test_revoke_all(tokens: Tokens, clock: Clock) -> None:
    a, b = tokens.login("ann"), tokens.login("ann")
    bob = tokens.login("bob")
    clock.now += 30
    tokens.revoke_all("ann")
    for pair in (a, b):
        assert "revoked" in refused(tokens.verify, pair.access_token).reason
        assert "revoked" in refused(tokens.refresh, pair.refresh_token).reason
    assert tokens.verify(bob.access_token)["sub"] == "bob"
    clock.now += 1  # iat has one-second resolution
    fresh = tokens.login("ann")
    assert tokens.verify(fresh.access_token)["sub"] == "ann"
    clock.now += 10
    assert tokens.verify(tokens.refresh(fresh.refresh_token).access_token)["sub"] == "ann"
    # the cut-off is kept as long as anything issued before it could be presented
    stored = tokens.store.read(subject_key("ann"))
    assert isinstance(stored, Stored) and stored.expires_at == NOW + 30 + 86400 + 30


def test_logout_revokes_the_access_token_and_its_family(tokens: Tokens, clock: Clock) -> None:
    pair = tokens.login("ann")
    clock.now += 5
    refreshed = tokens.refresh(pair.refresh_token)
    other = tokens.login("ann")
    tokens.logout(tokens.verify(refreshed.access_token))
    assert refused(tokens.verify, refreshed.access_token).reason == "token revoked"
    assert refused(tokens.verify, pair.access_token).reason == "token revoked"  # family's too
    assert refused(tokens.refresh, refreshed.refresh_token).reason == "refresh token revoked"
    assert tokens.verify(other.access_token)["sub"] == "ann"


def test_logout_with_a_refresh_token(tokens: Tokens) -> None:
    web, cli = tokens.login("ann"), tokens.login("ann")
    tokens.logout(tokens.verify(web.access_token), refresh_token=cli.refresh_token)
    for pair in (web, cli):
        refused(tokens.verify, pair.access_token)
        refused(tokens.refresh, pair.refresh_token)


def test_logout_of_a_token_without_a_family(tokens: Tokens) -> None:
    token = tokens.access.issue("ann")  # issued directly, not through login: no sid
    tokens.logout(tokens.verify(token))
    assert refused(tokens.verify, token).reason == "token revoked"


def test_revoke_refresh_needs_the_secret(tokens: Tokens) -> None:
    pair = tokens.login("ann")
    family_id, _ = parse_refresh(pair.refresh_token)
    refused(tokens.revoke_refresh, f"{family_id}.{'Z' * 43}")
    assert tokens.verify(pair.access_token)["sub"] == "ann"
    tokens.revoke_refresh(pair.refresh_token)
    refused(tokens.verify, pair.access_token)
    refused(tokens.refresh, pair.refresh_token)
    tokens.revoke_refresh(pair.refresh_token)  # again: nothing left to do, no error


def test_revoke_needs_verified_claims(tokens: Tokens) -> None:
    for claims in ({}, {"sub": "ann", "jti": "x"}, {"sub": "ann", "jti": "x", "exp": True}):
        refused(tokens.revoke, claims)


def test_unreadable_revocations_fail_closed(tokens: Tokens, clock: Clock) -> None:
    pair = tokens.login("ann")
    tokens.store.write(subject_key("ann"), b"garbage", NOW + 3600)
    assert "unreadable" in refused(tokens.verify, pair.access_token).reason
    assert "revoked" in refused(tokens.refresh, pair.refresh_token).reason
    clock.now += 1
    tokens.revoke_all("ann")  # rewriting the record heals it for tokens issued later
    clock.now += 1
    assert tokens.verify(tokens.login("ann").access_token)["sub"] == "ann"


def test_verify_costs_one_store_read(tokens: Tokens) -> None:
    pair = tokens.login("ann")
    calls: list[str] = []
    real_read = tokens.store.read

    def counting(key: str, lock: Any = None) -> Any:
        calls.append(key)
        return real_read(key, lock)

    tokens.store.read = counting  # type: ignore[method-assign]
    tokens.verify(pair.access_token)
    assert calls == [subject_key("ann")]
    calls.clear()
    tokens.access.verify(pair.access_token)  # the pure check: no store at all
    assert calls == []


def test_a_store_given_as_an_object_is_left_open(tmp_path: Path, clock: Clock) -> None:
    store = open_store(f"sqlite:///{tmp_path}/t.db")
    with Tokens(store, access(clock)) as tokens:
        pair = tokens.login("ann")
    assert store.validate_id(family_key(parse_refresh(pair.refresh_token)[0]))  # still usable
    store.close()


# --- the async API --------------------------------------------------------------------------


async def test_async_api(url: str, clock: Clock) -> None:
    async with AsyncTokens(url, access(clock)) as tokens:
        pair = await tokens.login("ann", {"scope": "read"})
        assert (await tokens.verify(pair.access_token))["scope"] == "read"
        clock.now += 10
        second = await tokens.refresh(pair.refresh_token)
        clock.now += 10
        with pytest.raises(TokenReused):
            await tokens.refresh(pair.refresh_token)
        with pytest.raises(InvalidToken, match="revoked"):
            await tokens.verify(second.access_token)
        other = await tokens.login("ann")
        claims = await tokens.verify(other.access_token)
        await tokens.revoke(claims)
        with pytest.raises(InvalidToken, match="token revoked"):
            await tokens.verify(other.access_token)
        third = await tokens.login("ann")
        await tokens.logout(await tokens.verify(third.access_token))
        with pytest.raises(InvalidToken, match="refresh token revoked"):
            await tokens.refresh(third.refresh_token)
        fourth = await tokens.login("ann")
        clock.now += 1
        await tokens.revoke_all("ann")
        with pytest.raises(InvalidToken, match="revoked"):
            await tokens.verify(fourth.access_token)
        fifth = await tokens.login("bob")
        await tokens.revoke_refresh(fifth.refresh_token)
        with pytest.raises(InvalidToken):
            await tokens.refresh(fifth.refresh_token)
