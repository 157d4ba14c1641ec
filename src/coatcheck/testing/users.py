"""Unexpire (database_ttl) and the per-user index against a store (part of the conformance
suite): both live above the store contract, so every store must carry them as it is."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from coatcheck import Client, SessionGone
from coatcheck.errors import LockLost
from coatcheck.ids import storage_key
from coatcheck.users import index_key, is_index

from ._driver import Driver, aw
from .lifecycle import new_session, stored

UA = Client(user_agent="Browser/1.0")
KEEP = {"idle_timeout": 1.0, "touch_threshold": 0.1, "database_ttl": 60.0}


async def test_an_expired_session_kept_for_database_ttl_can_be_unexpired(drv: Driver) -> None:
    sid = await new_session(drv, {"cart": [1, 2]}, **KEEP)
    await drv.advance(1.3)
    s = await aw(drv.manager(**KEEP).start(sid))
    assert s.is_expired
    assert "cart" not in s and s.can_unexpire
    s["note"] = "set before unexpire"
    assert s.unexpire() is True
    assert s["cart"] == [1, 2] and s["note"] == "set before unexpire"
    assert s.id != sid and not s.can_unexpire
    await aw(s.write_close())
    assert (s.set_cookie_header() or "").startswith(f"session={s.id};")
    assert await stored(drv, sid) is None  # the kept record went with the unexpire
    again = await aw(drv.manager(**KEEP).start(s.id))
    assert not again.is_expired and again["cart"] == [1, 2]
    await aw(again.abort())


async def test_an_expired_session_stays_kept_until_unexpired_or_its_retention_ends(
    drv: Driver,
) -> None:
    options = {**KEEP, "database_ttl": 1.0}
    sid = await new_session(drv, {"cart": 1}, **options)
    await drv.advance(1.3)
    for _ in range(2):  # a visit that does not unexpire leaves the kept data as it was
        s = await aw(drv.manager(**options).start(sid))
        assert s.is_expired and s.can_unexpire and "cart" not in s
        await aw(s.write_close())
        assert s.set_cookie_header() is None
    await drv.advance(1.2)
    if not drv.expires_itself:
        assert await aw(drv.manager(**options).gc()) == 1
    s = await aw(drv.manager(**options).start(sid))
    assert not s.can_unexpire and s.unexpire() is False
    await aw(s.abort())
    assert await stored(drv, sid) is None


async def test_without_database_ttl_nothing_is_kept(drv: Driver) -> None:
    options = {"idle_timeout": 1.0, "touch_threshold": 0.1}
    sid = await new_session(drv, {"cart": 1}, **options)
    await drv.advance(1.3)
    s = await aw(drv.manager(**options).start(sid))
    assert s.is_expired or drv.expires_itself  # a server's TTL may have dropped it already
    assert not s.can_unexpire and s.unexpire() is False
    await aw(s.abort())
    assert await stored(drv, sid) is None


async def test_retention_moves_only_the_store_deadline(drv: Driver) -> None:
    # a record written before database_ttl was set stays live under it, and one written
    # with it expires at its idle deadline all the same
    sid = await new_session(drv, {"a": 1}, idle_timeout=1.0, touch_threshold=0.1)
    s = await aw(drv.manager(**KEEP).start(sid))
    assert not s.is_expired and s["a"] == 1
    s["a"] = 2  # written now with the retention
    await aw(s.write_close())
    record = await stored(drv, sid)
    assert record is not None
    assert record.expires_at - s.expires_at == pytest.approx(60.0, abs=0.5)
    await drv.advance(0.6)
    s = await aw(drv.manager(**KEEP).start(sid))
    s.touch()  # a touch keeps the retention too
    await aw(s.write_close())
    record = await stored(drv, sid)
    assert record is not None
    assert record.expires_at - s.expires_at == pytest.approx(60.0, abs=0.5)
    await drv.advance(1.3)
    s = await aw(drv.manager(**KEEP).start(sid))
    assert s.is_expired and s.can_unexpire
    await aw(s.abort())


async def logged_in(drv: Driver, user: str, **options: Any) -> Any:
    s = await aw(drv.manager(**options).start(client=UA))
    s["greeting"] = "hi"
    s.login(user)
    await aw(s.write_close())
    return s


async def test_login_indexes_and_log_out_everywhere_ends_the_others(drv: Driver) -> None:
    first = await logged_in(drv, "alice")
    second = await logged_in(drv, "alice")
    await logged_in(drv, "bob")
    m = drv.manager()
    keys = {u.key for u in await aw(m.user_sessions("alice"))}
    assert keys == {storage_key(first.id), storage_key(second.id)}
    listing = await aw(m.user_sessions("alice"))
    assert all(u.user == "alice" and "Browser/1.0" in u.client for u in listing)
    s = await aw(m.start(first.id, client=UA))
    assert s.user == "alice"
    mine = [u for u in await aw(s.user_sessions()) if u.current]
    assert [u.key for u in mine] == [storage_key(first.id)]
    assert await aw(s.logout_everywhere()) == 1
    await aw(s.write_close())
    gone = await aw(m.start(second.id, client=UA))
    assert gone.is_new and gone.user is None
    await aw(gone.abort())
    assert [u.key for u in await aw(m.user_sessions("alice"))] == [storage_key(first.id)]
    assert len(await aw(m.user_sessions("bob"))) == 1
    assert is_index((await aw(drv.store.read(index_key("alice")))).payload)


async def test_login_changes_the_id_and_a_regenerated_id_is_listed_instead(drv: Driver) -> None:
    s = await aw(drv.manager().start())
    s["x"] = 1
    await aw(s.write_close())
    anonymous = s.id
    s = await aw(drv.manager().start(anonymous))
    s.login("carol")
    assert s.id != anonymous
    await aw(s.write_close())
    s = await aw(drv.manager().start(s.id))
    s.regenerate_id()
    await aw(s.write_close())
    listing = await aw(drv.manager().user_sessions("carol"))
    assert [u.key for u in listing] == [storage_key(s.id)]
    assert await stored(drv, anonymous) is None


async def test_destroyed_and_expired_sessions_are_not_listed(drv: Driver) -> None:
    options = {"idle_timeout": 1.0, "touch_threshold": 0.1}
    gone = await logged_in(drv, "dave", **options)
    await logged_in(drv, "dave", **options)
    s = await aw(drv.manager(**options).start(gone.id, client=UA))
    await aw(s.logout())
    await aw(s.write_close())
    assert len(await aw(drv.manager(**options).user_sessions("dave"))) == 1
    await drv.advance(1.3)
    assert await aw(drv.manager(**options).user_sessions("dave")) == []


async def test_a_session_given_to_another_user_leaves_the_first_index(drv: Driver) -> None:
    s = await logged_in(drv, "erin")
    s = await aw(drv.manager().start(s.id, client=UA))
    s.user = "frank"
    await aw(s.write_close())
    m = drv.manager()
    assert await aw(m.user_sessions("erin")) == []
    assert [u.key for u in await aw(m.user_sessions("frank"))] == [storage_key(s.id)]
    s = await aw(m.start(s.id, client=UA))
    s.clear()  # emptied: a logout; the user goes with the data
    await aw(s.write_close())
    assert await aw(m.user_sessions("frank")) == []


async def test_concurrent_logins_are_all_indexed(drv: Driver) -> None:
    n = 8
    if drv.asynchronous:
        made = await asyncio.gather(*(logged_in(drv, "grace") for _ in range(n)))
    else:
        with ThreadPoolExecutor(4) as pool:
            made = list(pool.map(lambda _: asyncio.run(logged_in(drv, "grace")), range(n)))
    listing = await aw(drv.manager().user_sessions("grace"))
    assert {u.key for u in listing} == {storage_key(s.id) for s in made}
    assert await aw(drv.manager().logout_user("grace")) == n
    for s in made:
        assert await stored(drv, s.id) is None


async def test_log_out_everywhere_while_a_session_logs_in_again(drv: Driver) -> None:
    # the session changes its id (a login) while another request logs its user out
    # everywhere: neither the old id nor the new one may survive
    s = await logged_in(drv, "heidi")
    old = s.id
    busy = await aw(drv.manager().start(old, client=UA))
    busy.login("heidi")
    assert await aw(drv.manager().logout_user("heidi")) == 1
    with pytest.raises((SessionGone, LockLost)):
        await aw(busy.write_close())
    for sid in (old, busy.id):
        assert await stored(drv, sid) is None
    assert await aw(drv.manager().user_sessions("heidi")) == []


async def test_logout_user_keeps_the_named_session(drv: Driver) -> None:
    keep = await logged_in(drv, "ivan")
    other = await logged_in(drv, "ivan")
    m = drv.manager()
    assert await aw(m.logout_user("ivan", keep=storage_key(keep.id))) == 1
    assert await stored(drv, other.id) is None
    assert await stored(drv, keep.id) is not None


async def test_unexpire_keeps_the_user_and_lists_the_new_id(drv: Driver) -> None:
    s = await logged_in(drv, "judy", **KEEP)
    await drv.advance(1.3)
    s = await aw(drv.manager(**KEEP).start(s.id, client=UA))
    assert s.is_expired and s.user is None
    assert s.unexpire() and s.user == "judy"
    await aw(s.write_close())
    listing = await aw(drv.manager(**KEEP).user_sessions("judy"))
    assert [u.key for u in listing] == [storage_key(s.id)]
