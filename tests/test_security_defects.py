"""Defects from the security review, each through the public API.

Store behaviour (restart, emptied-then-written, id collisions, tampered tombstones) is in the
conformance suite (coatcheck.testing.lifecycle), which runs against every store; this file
holds what is not store-specific: the sealed successor itself, the cookie's Max-Age, and the
web adapters.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import coatcheck
from coatcheck import Client, Config, IdCollision, SessionManager, ids, open_store
from coatcheck.stores.sqlite import AsyncSQLiteStore, SQLiteStore

HOUR = 3600.0
DAY = 24 * HOUR
AGENT = "security-defects"
UA = {"User-Agent": AGENT}


# --- 3. a create_id that keeps colliding ----------------------------------------------------


def test_id_collision_is_a_named_public_error() -> None:
    assert coatcheck.IdCollision is IdCollision
    assert "IdCollision" in coatcheck.__all__
    assert issubclass(IdCollision, coatcheck.CoatcheckError)


# --- 4. the sealed successor is authenticated ---------------------------------------------


def _reencode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def test_sealed_successor_round_trips_only_with_the_old_id() -> None:
    old, new = ids.new_id(), ids.new_id()
    sealed = ids.seal_successor(old, new)
    assert ids.open_successor(old, sealed) == new
    assert new not in sealed
    assert ids.open_successor(ids.new_id(), sealed) is None
    assert ids.seal_successor(old, new) != sealed  # a random nonce per seal


def test_every_bit_flip_of_a_sealed_successor_opens_to_none() -> None:
    old, new = ids.new_id(), ids.new_id()
    raw = base64.urlsafe_b64decode(ids.seal_successor(old, new))
    for i in range(len(raw)):
        for bit in range(8):
            flipped = bytearray(raw)
            flipped[i] ^= 1 << bit
            assert ids.open_successor(old, _reencode(bytes(flipped))) is None, (i, bit)


def test_a_chosen_successor_cannot_be_forged_by_xor() -> None:
    """XOR sealing let anyone who knew the new id point the tombstone at any other id."""
    old, new, victim = ids.new_id(), ids.new_id(), ids.new_id()
    raw = bytearray(base64.urlsafe_b64decode(ids.seal_successor(old, new)))
    delta = bytes(a ^ b for a, b in zip(new.encode(), victim.encode(), strict=True))
    for start in range(len(raw) - len(delta) + 1):
        forged = bytearray(raw)
        for i, d in enumerate(delta):
            forged[start + i] ^= d
        assert ids.open_successor(old, _reencode(bytes(forged))) is None


def test_truncated_extended_and_reencoded_successors_open_to_none() -> None:
    old, new = ids.new_id(), ids.new_id()
    sealed = ids.seal_successor(old, new)
    raw = base64.urlsafe_b64decode(sealed)
    bad = [
        "",
        sealed[:-1],
        sealed[:-4],
        sealed + "A",
        sealed + "AAAA",
        _reencode(raw[:-1]),
        _reencode(raw[1:]),
        _reencode(raw + b"\0"),
        _reencode(raw[:28]),
        sealed.rstrip("="),  # the same bytes, spelled without padding
        sealed.replace("-", "+").replace("_", "/"),  # standard alphabet
        sealed + "\n",
        " " + sealed,
        sealed[:10] + "*" + sealed[10:],
        "é" + sealed,
        "\ud800",
        new,  # the plain new id, as an XOR-sealed value of it might look
    ]
    for value in bad:
        if value == sealed:
            continue  # no alphabet difference in this seal: the same spelling
        assert ids.open_successor(old, value) is None, value


def test_open_successor_never_raises_on_a_bad_old_id() -> None:
    sealed = ids.seal_successor(ids.new_id(), ids.new_id())
    assert ids.open_successor("é", sealed) is None
    assert ids.open_successor("", sealed) is None


# --- 5. Max-Age never outlives what the server honours --------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _max_age(header: str | None) -> int:
    assert header is not None
    found = re.search(r"Max-Age=(\d+)", header)
    assert found is not None, header
    return int(found.group(1))


def test_remember_max_age_is_capped_by_the_absolute_timeout() -> None:
    clock = Clock()
    manager = SessionManager(open_store("memory://"), Config(gc_probability=0), clock=clock)
    cap = manager.config.absolute_timeout
    assert cap == 12 * HOUR
    s = manager.start()
    s["user"] = "ann"
    s.remember(idle=30 * DAY)
    s.write_close()
    assert s.cookie_max_age is not None and s.cookie_max_age <= cap
    assert _max_age(s.set_cookie_header()) == int(cap)

    clock.now += 11 * HOUR  # an hour of the absolute cap is left
    s = manager.start(s.id)
    assert not s.is_new
    s.touch()
    s.write_close()
    assert _max_age(s.set_cookie_header()) <= HOUR
    assert s.cookie_max_age is not None and s.cookie_max_age <= HOUR


def test_remember_with_its_own_absolute_timeout_is_capped_by_it() -> None:
    clock = Clock()
    manager = SessionManager(open_store("memory://"), Config(gc_probability=0), clock=clock)
    s = manager.start()
    s["user"] = "ann"
    s.remember(idle=30 * DAY, absolute=7 * DAY)
    s.write_close()
    assert _max_age(s.set_cookie_header()) == int(7 * DAY)


def test_cookie_lifetime_is_capped_by_the_idle_deadline() -> None:
    clock = Clock()
    config = Config(gc_probability=0, cookie_lifetime=30 * DAY, idle_timeout=HOUR)
    manager = SessionManager(open_store("memory://"), config, clock=clock)
    s = manager.start()
    s["user"] = "ann"
    s.write_close()
    assert _max_age(s.set_cookie_header()) == int(HOUR)


# --- 1 and 2 through the web adapters --------------------------------------------------------


CONFIG = Config(gc_probability=0)


def _sid(set_cookies: list[str]) -> str | None:
    for line in set_cookies:
        if line.startswith("session="):
            return line.split(";", 1)[0].split("=", 1)[1]
    return None


def _deletes(set_cookies: list[str]) -> bool:
    return any(line.startswith("session=") and "max-age=0" in line.lower() for line in set_cookies)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    yield str(tmp_path / "sessions.db")


def _check(db: str, sid: str) -> dict[str, Any] | None:
    manager = SessionManager(SQLiteStore(db), CONFIG)
    try:
        s = manager.start(sid, client=Client(user_agent=AGENT), read_only=True)
        return None if s.is_new else dict(s)
    finally:
        manager.store.close()


def _starlette(db: str) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from coatcheck import AsyncSessionManager
    from coatcheck.web.asgi import SessionMiddleware, load_session, request_session

    async def start(request: Request) -> Response:
        s = await load_session(request)
        s["user"] = "ann"
        return PlainTextResponse("ok")

    async def restart(request: Request) -> Response:
        await load_session(request)
        await request_session(request).session.destroy(restart=True)
        request.session["user"] = "bob"
        return PlainTextResponse("restarted")

    async def relogin(request: Request) -> Response:
        await load_session(request)
        request.session.clear()
        request.session["user"] = "bob"
        return PlainTextResponse("relogged")

    routes = [
        Route("/start", start),
        Route("/restart", restart, methods=["POST"]),
        Route("/relogin", relogin, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(SessionMiddleware, store=AsyncSessionManager(AsyncSQLiteStore(db), CONFIG))
    return TestClient(app, base_url="https://testserver")


def _asgi_request(client: Any, method: str, path: str, sid: str | None) -> list[str]:
    client.cookies.clear()
    headers = {**UA, **({"Cookie": f"session={sid}"} if sid else {})}
    r = client.request(method, path, headers=headers)
    assert r.status_code == 200, r.text
    return list(r.headers.get_list("set-cookie"))


def test_asgi_destroy_restart_then_login_sends_the_new_cookie(db: str) -> None:
    with _starlette(db) as client:
        old = _sid(_asgi_request(client, "GET", "/start", None))
        assert old is not None
        cookies = _asgi_request(client, "POST", "/restart", old)
        new = _sid(cookies)
        assert not _deletes(cookies)
        assert new is not None and new != old
        assert _check(db, new) == {"user": "bob"}
        assert _check(db, old) is None


def test_asgi_clear_then_login_gets_a_new_id(db: str) -> None:
    with _starlette(db) as client:
        old = _sid(_asgi_request(client, "GET", "/start", None))
        assert old is not None
        cookies = _asgi_request(client, "POST", "/relogin", old)
        new = _sid(cookies)
        assert not _deletes(cookies)
        assert new is not None and new != old
        assert _check(db, new) == {"user": "bob"}
        assert _check(db, old) is None


def test_flask_clear_then_login_gets_a_new_id(db: str) -> None:
    flask = pytest.importorskip("flask")
    from werkzeug.test import Client as WerkzeugClient

    from coatcheck.web.flask import init_app

    app = flask.Flask(__name__)
    session = flask.session

    @app.get("/start")
    def start() -> str:
        session["user"] = "ann"
        return "ok"

    @app.post("/relogin")
    def relogin() -> str:
        session.clear()  # Flask's login idiom
        session["user"] = "bob"
        return "relogged"

    manager = SessionManager(SQLiteStore(db), CONFIG)
    init_app(app, manager)
    client = WerkzeugClient(app, use_cookies=False)

    def request(method: str, path: str, sid: str | None) -> list[str]:
        headers = {**UA, **({"Cookie": f"session={sid}"} if sid else {})}
        r = client.open(path, method=method, headers=headers, base_url="https://localhost")
        assert r.status_code == 200, r.get_data(as_text=True)
        return r.headers.getlist("Set-Cookie")

    old = _sid(request("GET", "/start", None))
    assert old is not None
    cookies = request("POST", "/relogin", old)
    new = _sid(cookies)
    assert not _deletes(cookies)
    assert new is not None and new != old
    assert _check(db, new) == {"user": "bob"}
    assert _check(db, old) is None
    manager.store.close()
