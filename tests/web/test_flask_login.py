"""Flask-Login's login_user/logout_user mark the coatcheck session (track_logins)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("flask_login")

from flask import Flask
from flask_login import LoginManager, UserMixin, login_user, logout_user

from coatcheck import Config, SessionManager, ids, open_store
from coatcheck.web.flask import current_session, init_app, track_logins


class User(UserMixin):
    def __init__(self, uid: str) -> None:
        self.id = uid


def make_app() -> tuple[Flask, SessionManager]:
    app = Flask(__name__)
    manager = SessionManager(open_store("memory://"), Config(cookie_secure=False))
    init_app(app, manager)
    logins = LoginManager(app)
    logins.user_loader(User)
    track_logins(app)

    @app.post("/login/<uid>")
    def login(uid: str) -> str:
        login_user(User(uid))
        return "in"

    @app.post("/logout")
    def logout() -> str:
        logout_user()
        return "out"

    @app.get("/everywhere")
    def everywhere() -> str:
        return str(current_session().session.logout_everywhere())

    return app, manager


def cookie(client: Any) -> str:
    found = client.get_cookie("session")
    assert found is not None
    return str(found.value)


def test_login_user_regenerates_and_indexes_and_logout_user_unindexes() -> None:
    app, manager = make_app()
    laptop, phone = app.test_client(), app.test_client()
    laptop.get("/everywhere")  # an anonymous session first: login must change its id
    laptop.post("/login/7")
    phone.post("/login/7")
    keys = {u.key for u in manager.user_sessions("7")}
    assert keys == {ids.storage_key(cookie(laptop)), ids.storage_key(cookie(phone))}
    assert laptop.get("/everywhere").text == "1"
    assert [u.key for u in manager.user_sessions("7")] == [ids.storage_key(cookie(laptop))]
    laptop.post("/logout")
    assert manager.user_sessions("7") == []
