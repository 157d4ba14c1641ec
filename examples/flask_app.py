"""A small Flask app on coatcheck sessions: a counter, login/logout, flashed messages.

Run it with ``python examples/flask_app.py`` and open http://localhost:5000 (browsers
accept the Secure cookie on localhost). Sessions go to ``examples/flask-sessions.db``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, flash, get_flashed_messages, redirect, request, session
from flask.typing import ResponseReturnValue
from markupsafe import Markup, escape

from coatcheck.web.flask import (
    SessionInterface,
    destroy,
    init_app,
    read_only,
    regenerate,
    write_close,
)


def create_app(
    settings: dict[str, Any] | None = None,
    session_interface: SessionInterface | None = None,
) -> Flask:
    app = Flask(__name__)
    store = f"sqlite:///{Path(__file__).resolve().parent / 'flask-sessions.db'}"
    app.config.update(
        COATCHECK_STORE=store,
        COATCHECK_IDLE_TIMEOUT=1800,  # 30 minutes idle, with a browser-session cookie...
        SESSION_PERMANENT=False,  # ...unless the user ticks "remember me" at login
        PERMANENT_SESSION_LIFETIME=timedelta(days=30),
    )
    app.config.update(settings or {})
    if session_interface is None:
        init_app(app)
    else:
        app.session_interface = session_interface

    @app.get("/")
    def index() -> ResponseReturnValue:
        session["visits"] = session.get("visits", 0) + 1
        messages = "".join(
            f"<li class={escape(category)}>{escape(message)}</li>"
            for category, message in get_flashed_messages(with_categories=True)
        )
        user = escape(session.get("user", "nobody"))
        return f"<p>Hello {user}; visits: {session['visits']}</p><ul>{messages}</ul>"

    @app.post("/login")
    def login() -> ResponseReturnValue:
        name = request.form.get("user", "")
        if not name:
            return "user required", 400
        regenerate()  # new id on every privilege change: no session fixation
        session["user"] = name
        if request.form.get("remember"):
            session.permanent = True  # PERMANENT_SESSION_LIFETIME, for cookie and server
        flash(f"Welcome, {name}", "info")
        flash(Markup("<b>Signed in</b>"), "html")
        return redirect("/")

    @app.post("/logout")
    def logout() -> ResponseReturnValue:
        destroy()  # deletes the stored session and expires the cookie
        return redirect("/")

    @app.get("/whoami")
    @read_only  # no lock, no write: many of these can run side by side
    def whoami() -> ResponseReturnValue:
        return {"user": session.get("user")}

    @app.get("/report")
    def report() -> ResponseReturnValue:
        user = session.get("user")
        write_close()  # release the lock before slow work; the session stays readable
        return {"user": user, "report": "done"}

    @app.get("/health")
    def health() -> ResponseReturnValue:
        return "ok"  # never touches the session: no store call, no cookie

    return app


if __name__ == "__main__":
    create_app().run(debug=False)
