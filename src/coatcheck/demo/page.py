"""The demo's HTML: one page, inline CSS and a little vanilla JS, nothing from elsewhere.

Everything shown is escaped here; the app hands over plain values. The inline style and
script are allowed by their hashes in the Content-Security-Policy, so nothing else runs.
"""

from __future__ import annotations

import base64
import hashlib
import html
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..config import Config
from ..errors import CoatcheckError, Conflict, StoreUnavailable

STYLE = """
:root{--fg:#1d2327;--muted:#5f6368;--line:#dcdcde;--bg:#f5f6f7;--card:#fff;--accent:#2458a6;
--warn:#a85d00;--bad:#b32d2e;--ok:#2e7d32}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,sans-serif;color:var(--fg);background:var(--bg);margin:0}
header,main,footer{max-width:66rem;margin:0 auto;padding:0 1rem}
header{padding-top:1.2rem}
h1{font-size:1.4rem;margin:0 0 .2rem}
h2{font-size:1.05rem;margin:0 0 .6rem}
.meta,.hint,footer{color:var(--muted)}
.hint{font-size:.9em;margin:.5rem 0 0}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(27rem,1fr));gap:1rem;
margin-top:1rem}
section{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:1rem;
overflow-x:auto}
section.wide{grid-column:1/-1}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.25rem .4rem;border-bottom:1px solid var(--line);
vertical-align:top}
th{font-weight:600;color:var(--muted)}
.facts th{width:40%}
code{font:13px ui-monospace,monospace;background:#eef0f2;padding:0 .25rem;border-radius:3px}
form{display:inline-flex;gap:.4rem;flex-wrap:wrap;align-items:center;margin:.2rem .3rem .2rem 0}
input,select,button{font:inherit;padding:.2rem .5rem;border:1px solid #8c8f94;border-radius:4px;
background:#fff}
button{background:var(--accent);color:#fff;border-color:var(--accent);cursor:pointer}
button.quiet{background:#fff;color:var(--accent)}
button:disabled{opacity:.5;cursor:wait}
.notice{padding:.5rem .8rem;border-left:4px solid var(--accent);background:#eaf1fb;
margin:.5rem 0;border-radius:0 4px 4px 0}
.notice.warn{border-color:var(--warn);background:#fcf3e6}
.notice.bad{border-color:var(--bad);background:#fbeaea}
.flag{font:12px ui-monospace,monospace;padding:0 .35rem;border-radius:3px;background:#eef0f2}
.flag.on{background:var(--warn);color:#fff}
.bar{height:.9rem;background:#eef0f2;border-radius:3px;overflow:hidden;display:flex;
min-width:9rem}
.bar span{display:block;height:100%;width:0}
.wall{background:var(--accent)}.applied{background:var(--ok)}.conflicts{background:var(--warn)}
.lost{background:var(--bad)}
#burst td{vertical-align:middle}
#burst p button{margin-right:.2rem}
.wall-ms,.counts{white-space:nowrap}
#user-sessions{font-size:.9em}
.client{max-width:9rem;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.key span{display:inline-block;width:.7rem;height:.7rem;border-radius:2px;margin:0 .2rem 0 .6rem}
"""

SCRIPT = """
"use strict";
const span = (s) => {
  s = Math.round(Math.abs(s));
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
  return h ? h + "h " + m + "m" : (m ? m + "m " : "") + (s % 60) + "s";
};
for (const el of document.querySelectorAll("time[data-ts]")) {
  const when = new Date(Number(el.dataset.ts) * 1000);
  el.textContent = "short" in el.dataset ? when.toLocaleTimeString() : when.toLocaleString();
}
function tick() {
  const now = Date.now() / 1000;
  for (const el of document.querySelectorAll("[data-until]")) {
    const left = Number(el.dataset.until) - now;
    el.textContent = left > 0 ? "(in " + span(left) + ")" : "(passed: reload)";
  }
}
tick(); setInterval(tick, 1000);

const panel = document.getElementById("burst");
if (panel) {
  const token = panel.dataset.csrf, results = {};
  const buttons = panel.querySelectorAll("button");
  const status = document.getElementById("burst-status");
  const counter = async () =>
    (await (await fetch("/burst/state", {cache: "no-store"})).json()).counter;
  async function run(mode) {
    const field = document.getElementById("burst-n");
    const n = Math.max(1, Math.min(32, parseInt(field.value, 10) || 8));
    status.textContent = "running " + n + " requests in " + mode + " mode…";
    const before = await counter();
    const t0 = performance.now();
    const codes = await Promise.all(Array.from({length: n}, () =>
      fetch("/burst/hit?mode=" + mode, {method: "POST", headers: {"X-CSRF-Token": token}})
        .then((r) => r.status, () => 0)));
    const wall = performance.now() - t0;
    const after = await counter();
    const ok = codes.filter((c) => c === 200).length;
    const conflicts = codes.filter((c) => c === 409).length;
    results[mode] = {n, wall, before, after, ok, conflicts, failed: n - ok - conflicts,
      lost: Math.max(0, ok - (after - before))};
    draw();
  }
  function draw() {
    const longest = Math.max(...Object.values(results).map((r) => r.wall));
    for (const [mode, r] of Object.entries(results)) {
      const row = document.getElementById("burst-" + mode);
      row.querySelector(".wall").style.width = (100 * r.wall / longest) + "%";
      for (const part of ["applied", "conflicts", "lost"]) {
        const value = part === "applied" ? r.ok - r.lost : r[part];
        row.querySelector("." + part).style.width = (100 * value / r.n) + "%";
      }
      row.querySelector(".wall-ms").textContent = Math.round(r.wall) + " ms";
      row.querySelector(".counts").textContent = r.before + " → " + r.after +
        " · " + (r.ok - r.lost) + " applied · " + r.conflicts + " conflicts · " + r.lost +
        " lost" + (r.failed ? " · " + r.failed + " failed" : "");
      Object.assign(row.dataset, {done: "1", lost: r.lost, conflicts: r.conflicts,
        applied: r.ok - r.lost, failed: r.failed});
    }
  }
  async function runAll(modes) {
    buttons.forEach((b) => { b.disabled = true; });
    try { for (const mode of modes) await run(mode); status.textContent = "done"; }
    catch (e) { status.textContent = "failed: " + e; }
    finally { buttons.forEach((b) => { b.disabled = false; }); }
  }
  for (const b of buttons)
    b.addEventListener("click", () => runAll(b.dataset.mode.split(" ")));
}
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        f"default-src 'none'; style-src {_sha256(STYLE)}; script-src {_sha256(SCRIPT)}; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]
"""Only the page's own style and script run; no framing, no form posts elsewhere."""


@dataclass(frozen=True)
class StoredView:
    """The session's record as read back from the store."""

    created: float
    last_access: float | None  # None: the idle deadline is capped by the absolute one
    kept_until: float | None  # database_ttl: the store keeps the record until then
    data_bytes: int
    payload_bytes: int
    version: int


@dataclass(frozen=True)
class PageView:
    server: str
    store: str
    config: Config
    masked_id: str
    id_hash: str
    previous_hash: str | None
    is_new: bool
    is_expired: bool
    is_bad_hash: bool
    user: str | None
    stored: StoredView | None
    expires_at: float
    idle_timeout: float
    absolute_timeout: float
    data: Mapping[str, Any]
    csrf: str
    tag: str
    done: Mapping[str, str]
    user_sessions: Sequence[Any]  # coatcheck.users.UserSession
    burst_modes: Sequence[str]


esc = html.escape


def render(v: PageView) -> bytes:
    parts = [
        _head("coatcheck demo"),
        "<header><h1>coatcheck demo</h1>",
        meta(v.server, v.store),
        *_notices(v),
        "</header><main>",
        _session_panel(v),
        _variables_panel(v),
        _id_panel(v),
        _user_panel(v),
        _burst_panel(v),
        "</main>",
        _footer(v.config),
        "</body></html>",
    ]
    return "\n".join(parts).encode()


def expired(server: str, store: str, config: Config, csrf: str) -> bytes:
    """The page for a session that expired but is kept: bring it back, or start over."""
    keep = _duration(config.database_ttl)
    token = _csrf(csrf)
    body = f"""<header><h1>coatcheck demo</h1>{meta(server, store)}
<p class="notice warn" id="expired-notice">The session this browser presented has
<strong>expired</strong> (<code>is_expired</code> is true): it was idle for longer than
{_duration(config.idle_timeout)}. Its data is not shown, but the store keeps it for {keep}
(<code>database_ttl</code>), so it can come back under a new id.</p>
<form method="post" action="/unexpire">{token}<button id="unexpire">Unexpire</button></form>
<form method="post" action="/fresh">{token}
<button class="quiet" id="fresh">Start a new session</button></form>
<p class="hint">Nothing was saved for this page, so the browser still holds the expired id:
<code>session.unexpire()</code> works on the request that presents it.</p></header>"""
    return "\n".join((_head("session expired"), body, _footer(config), "</body></html>")).encode()


def message(title: str, text: str, meta: str = "") -> bytes:
    body = f'<header><h1>{esc(title)}</h1>{meta}<p>{esc(text)}</p><p><a href="/">Back to the demo'
    return (_head(title) + body + "</a></p></header></body></html>").encode()


def forbidden(expired_session: bool, where: str) -> bytes:
    why = (
        "the session had expired, so it holds no token"
        if expired_session
        else "the form came from an older page (the session was removed or its id changed "
        "in another tab or browser) or from another site"
    )
    return message(
        "Forbidden: CSRF check failed",
        f"This form's CSRF token does not match this session's token: {why}. "
        "Nothing was changed. Reload the page and try again.",
        where,
    )


def store_error(exc: CoatcheckError, status: int, where: str) -> bytes:
    if isinstance(exc, StoreUnavailable):
        title, hint = "The session store is unavailable", "The store did not answer in time."
    elif isinstance(exc, Conflict):
        title, hint = "The session changed meanwhile", "Another request changed it first."
    elif status == 503:
        title, hint = "The session is busy", "Another request holds its lock."
    else:
        title, hint = "Session error", "The request could not use the session."
    text = f"{hint} Nothing was saved. ({type(exc).__name__}: {exc}; HTTP {status})"
    return message(title, text, where)


# --- pieces --------------------------------------------------------------------------------


def _head(title: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
    )


def meta(server: str, store: str) -> str:
    return (
        f'<p class="meta">Served by <strong id="server">{esc(server)}</strong> · store '
        f"<code>{esc(store)}</code></p>"
    )


def _footer(config: Config) -> str:
    secure = "Secure; " if config.cookie_secure else "<strong>no Secure</strong> (plain HTTP); "
    return (
        f"<footer><p>Cookie <code>{esc(config.cookie_name)}</code>: {secure}HttpOnly; "
        f"SameSite={esc(str(config.cookie_samesite))}. Idle timeout "
        f"{_duration(config.idle_timeout)}, absolute {_duration(config.absolute_timeout)}, "
        f"database_ttl {_duration(config.database_ttl)}, lock mode "
        f"<code>{esc(config.lock_mode)}</code>, fingerprint policy "
        f"<code>{esc(config.fingerprint_policy)}</code>.</p></footer>"
        f"<script>{SCRIPT}</script>"
    )


def _csrf(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(token)}">'


def _button(action: str, label: str, csrf: str, *, quiet: bool = False, ident: str = "") -> str:
    cls = ' class="quiet"' if quiet else ""
    id_attr = f' id="{ident}"' if ident else ""
    return (
        f'<form method="post" action="{action}">{_csrf(csrf)}'
        f"<button{cls}{id_attr}>{esc(label)}</button></form>"
    )


_WHY = {
    "login": "Logging in regenerates the id (session.login).",
    "regenerated": "regenerate_id() moved the same data to a new id.",
    "removed": "The old session was removed; this is a new one.",
    "logout": "Logging out removed the session; this is a new one.",
    "unexpired": "unexpire() brought the data back under a new id.",
    "fresh": "A new session replaced the expired one.",
}


def _notices(v: PageView) -> list[str]:
    out = []
    done = v.done.get("done", "")
    if v.previous_hash and v.previous_hash != v.id_hash:
        why = _WHY.get(done, "(it expired, was reset, or changed in another tab or server)")
        out.append(
            '<p class="notice warn" id="id-changed">The session id changed since the previous '
            f"page (id hash <code>{esc(v.previous_hash[:8])}…</code> → "
            f"<code>{v.id_hash[:8]}…</code>). {esc(why)}</p>"
        )
    text = _done_text(done, v)
    if text:
        out.append(f'<p class="notice" id="done">{text}</p>')
    if v.is_bad_hash:
        policy = v.config.fingerprint_policy
        kept = (
            "The session was kept and flagged (policy flag): the app decides what to do."
            if policy == "flag"
            else "The session was reset (policy reset)."
        )
        out.append(
            '<p class="notice bad" id="bad-hash">The browser fingerprint does not match the '
            f"session's (<code>is_bad_hash</code>). {kept}</p>"
        )
    status = _status(v)
    out.append(f'<p id="status">{status}</p>')
    return out


def _status(v: PageView) -> str:
    if v.is_expired:
        return "Your previous session had expired; this is a new one."
    return "This is a new session." if v.is_new else "Welcome back."


def _done_text(done: str, v: PageView) -> str:
    name = v.done.get("name", "")
    if done == "get":
        if name in v.data:
            value = orjson.dumps(v.data[name]).decode()
            return f"<code>{esc(name)}</code> = <code id='got'>{esc(value)}</code>"
        return f"<code>{esc(name)}</code> is not set."
    texts = {
        "set": f"Set <code>{esc(name)}</code>.",
        "unset": f"Removed <code>{esc(name)}</code>.",
        "badname": "A name is needed, and names starting with _ are the demo's own.",
        "tag": "Browser tag switched: this page load presented a different User-Agent to "
        "the fingerprint check. Switch it back to match again.",
        "everywhere": f"Ended {esc(v.done.get('n', '0'))} other session(s) of this user.",
        "notkept": "There was nothing to bring back (already unexpired, or no longer kept).",
        "unexpired": "The expired session's data is back.",
        "logout": "Logged out.",
        "login": f"Logged in as <strong>{esc(v.user or '')}</strong>.",
        "removed": "The session was removed (destroy).",
    }
    return texts.get(done, "")


def _flag(name: str, on: bool) -> str:
    cls = "flag on" if on else "flag"
    return f'<span class="{cls}" id="{name}">{"true" if on else "false"}</span>'


def _time(stamp: float | None, countdown: bool = False, short: bool = False) -> str:
    if stamp is None:
        return "—"
    shape = "%H:%M:%S UTC" if short else "%Y-%m-%d %H:%M:%S UTC"
    text = time.strftime(shape, time.gmtime(stamp))
    out = f'<time data-ts="{stamp:.3f}"{" data-short" if short else ""}>{text}</time>'
    if countdown:
        out += f' <span class="hint" data-until="{stamp:.3f}"></span>'
    return out


def _duration(seconds: float) -> str:
    if seconds and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds and seconds >= 600 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _session_panel(v: PageView) -> str:
    s = v.stored
    created = s.created if s else None
    absolute = created + v.absolute_timeout if created is not None else None
    size = "not stored"
    if s is not None:
        size = f"{s.data_bytes} bytes of data ({s.payload_bytes} stored, version {s.version})"
    rows = [
        ("Session id", f'<code id="sid">{esc(v.masked_id)}</code> (first 4 characters)'),
        ("is_new", _flag("is_new", v.is_new)),
        ("is_expired", _flag("is_expired", v.is_expired)),
        ("is_bad_hash", _flag("is_bad_hash", v.is_bad_hash)),
        ("Logged in as", f'<span id="user">{esc(v.user) if v.user else "—"}</span>'),
        ("Created", _time(created)),
        ("Last access (stored)", _time(s.last_access if s else None)),
        (f"Idle deadline ({_duration(v.idle_timeout)})", _time(v.expires_at, True)),
        (f"Absolute deadline ({_duration(v.absolute_timeout)})", _time(absolute, True)),
        ("Kept until (database_ttl)", _time(s.kept_until if s else None)),
        ("Size", size),
        ("Visits", f'<strong id="visits">{v.data.get("visits")}</strong>'),
    ]
    body = "".join(f"<tr><th>{k}</th><td>{val}</td></tr>" for k, val in rows)
    return (
        '<section id="session"><h2>The session, as the server sees it</h2>'
        f'<table class="facts">{body}</table><p class="hint">Read back from the store after '
        "this request saved it. Each page load counts a visit.</p></section>"
    )


def _variables_panel(v: PageView) -> str:
    rows = []
    for key, value in v.data.items():
        shown = "(hidden)" if key.startswith("_csrf") else orjson.dumps(value).decode()
        rows.append(f"<tr><td><code>{esc(key)}</code></td><td>{esc(shown)}</td></tr>")
    return f"""<section id="variables"><h2>Session variables</h2>
<form method="post" action="/var" id="var-form">{_csrf(v.csrf)}
<input name="name" placeholder="name" required maxlength="100" aria-label="name">
<input name="value" placeholder="value" maxlength="1000" aria-label="value">
<select name="action" aria-label="action"><option value="set">set</option>
<option value="get">get</option><option value="unset">unset</option></select>
<button>Go</button></form>
<table id="data"><tr><th>key</th><th>value</th></tr>{"".join(rows)}</table>
<p class="hint">Keys starting with _ are the demo's own (the CSRF token).</p></section>"""


def _id_panel(v: PageView) -> str:
    other = "b" if v.tag == "a" else "a"
    idle = _duration(v.idle_timeout)
    keep = _duration(v.config.database_ttl)
    return f"""<section id="lifetime"><h2>Id, fingerprint, expiry</h2>
{_button("/regenerate", "Regenerate id", v.csrf, ident="regenerate")}
{_button("/destroy", "Remove session", v.csrf, quiet=True, ident="destroy")}
{
        _button(
            "/badhash",
            f"Switch browser tag ({v.tag} → {other})",
            v.csrf,
            quiet=True,
            ident="badhash",
        )
    }
<p class="hint">The fingerprint binds the session to the User-Agent; the demo adds a tag kept
in a cookie of its own (now <code id="tag">{esc(v.tag)}</code>), so switching it looks like
the cookie being replayed from another browser. Policy
<code>{esc(v.config.fingerprint_policy)}</code>: <em>flag</em> keeps the session and sets
<code>is_bad_hash</code> so you can see it; <em>reset</em> (the default outside the demo)
starts a new session instead.</p>
<p class="hint">Leave the page alone for {idle} (the idle timeout) and reload: the session
has expired, but it is kept {keep} (<code>database_ttl</code>) and can be unexpired.</p>
</section>"""


def _user_panel(v: PageView) -> str:
    if not v.user:
        return f"""<section id="users"><h2>Log in</h2>
<form method="post" action="/login" id="login-form">{_csrf(v.csrf)}
<input name="user" placeholder="user name" required maxlength="40" aria-label="user name">
<button id="login">Log in</button></form>
<p class="hint">No password: the point is what happens to the session. Logging in gives the
session a new id (watch the id above) and lists it under the user, so the user can see and
end their other sessions.</p></section>"""
    rows = []
    for s in v.user_sessions:
        mark = "this one" if s.current else ""
        rows.append(
            f'<tr class="user-session"><td><code>{esc(s.key[:8])}…</code></td>'
            f"<td>{_time(s.created, short=True)}</td>"
            f"<td>{_time(s.last_access, short=True)}</td>"
            f'<td class="client" title="{esc(s.client)}">'
            f"{esc(s.client)}</td><td>{mark}</td></tr>"
        )
    head = (
        "<tr><th>key</th><th>created</th><th>last access</th><th>client</th><th>current</th></tr>"
    )
    return f"""<section id="users"><h2>Logged in as {esc(v.user)}</h2>
{_button("/logout", "Log out", v.csrf, ident="logout")}
{
        _button(
            "/logout-everywhere",
            "Log out everywhere else",
            v.csrf,
            quiet=True,
            ident="logout-everywhere",
        )
    }
<table id="user-sessions">{head}{"".join(rows)}</table>
<p class="hint">{len(v.user_sessions)} session(s) of this user: storage keys (hashes of the
ids), never the ids. Log in with the same name in another browser to see a second one.</p>
</section>"""


def _burst_panel(v: PageView) -> str:
    labels = {
        "exclusive": "exclusive: the lock is held while the request sleeps",
        "release": "exclusive, early release: write_close() before the slow part",
        "optimistic": "optimistic: no lock, a version check on write",
    }
    rows = "".join(
        f'<tr id="burst-{m}"><th>{esc(labels.get(m, m))}</th>'
        '<td><div class="bar"><span class="wall"></span></div></td><td class="wall-ms">—</td>'
        '<td><div class="bar"><span class="applied"></span><span class="conflicts"></span>'
        '<span class="lost"></span></div></td><td class="counts">—</td></tr>'
        for m in v.burst_modes
    )
    buttons = "".join(
        f'<button type="button" data-mode="{m}" id="run-{m}">{esc(m)}</button>'
        for m in v.burst_modes
    )
    every = " ".join(v.burst_modes)
    return f"""<section id="burst" class="wide" data-csrf="{esc(v.csrf)}">
<h2>Parallel requests on this session</h2>
<p>Send <input id="burst-n" type="number" min="1" max="32" value="8" aria-label="requests">
requests at once, each reading a counter, sleeping 50 ms, and writing counter + 1:
{buttons} <button type="button" class="quiet" data-mode="{every}" id="run-all">all three</button>
<span id="burst-status" class="hint"></span></p>
<table><tr><th>mode</th><th>wall time</th><th></th><th>outcome of the requests</th><th></th>
</tr>{rows}</table>
<p class="hint key">Outcome:<span class="applied"></span>applied<span class="conflicts">
</span>reported conflict (SessionConflict, HTTP 409)<span class="lost"></span>lost (answered
200 yet missing from the counter). Browsers open at most 6 connections to one server, so
some requests start late.</p></section>"""
