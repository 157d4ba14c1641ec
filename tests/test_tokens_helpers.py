"""The bearer-token helpers: the FastAPI dependency and the Flask decorator (test clients)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from flask import Flask, g

from coatcheck.errors import InvalidToken
from coatcheck.tokens import AccessTokens, AsyncTokens, Key, Tokens
from coatcheck.tokens._bearer import challenge, token_from
from coatcheck.tokens.fastapi import bearer
from coatcheck.tokens.flask import require_token


def access() -> AccessTokens:
    return AccessTokens(Key.generate("k1", "HS256"), audience="api")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


BAD_HEADERS: list[Any] = [
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer a b"},
    {"Authorization": "Bearer not.a.jwt"},
    {"Authorization": "bearer x.y.z"},
    {"Authorization": "Bearer " + "a" * 9000},
]


def check_refusal(response: Any, *, sent: bool) -> None:
    assert response.status_code == 401
    value = response.headers["WWW-Authenticate"]
    assert value.startswith("Bearer")
    assert ('error="invalid_token"' in value) is sent


# --- FastAPI --------------------------------------------------------------------------------


def fastapi_app(tokens: AsyncTokens | Tokens | AccessTokens) -> FastAPI:
    app = FastAPI()
    verified = bearer(tokens, realm="api")

    @app.get("/me")
    async def me(claims: dict[str, Any] = Depends(verified)) -> dict[str, Any]:
        return {"user": claims["sub"]}

    return app


@pytest.fixture(params=["async", "sync", "pure"])
def fastapi_setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    keys = access()
    if request.param == "async":
        service: Any = AsyncTokens(f"sqlite:///{tmp_path}/t.db", keys)
    elif request.param == "sync":
        service = Tokens(f"sqlite:///{tmp_path}/t.db", keys)
    else:
        service = keys
    with TestClient(fastapi_app(service)) as client:
        yield client, service
    if isinstance(service, Tokens):
        service.close()


def test_fastapi_accepts_a_valid_token(fastapi_setup: tuple[Any, Any]) -> None:
    client, service = fastapi_setup
    token = (service.access if hasattr(service, "access") else service).issue("ann")
    response = client.get("/me", headers=auth(token))
    assert response.status_code == 200 and response.json() == {"user": "ann"}


def test_fastapi_refuses_missing_and_bad_tokens(fastapi_setup: tuple[Any, Any]) -> None:
    client, _ = fastapi_setup
    missing = client.get("/me")
    check_refusal(missing, sent=False)
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    for headers in BAD_HEADERS:
        check_refusal(client.get("/me", headers=headers), sent=True)
    other_key = AccessTokens(Key.generate("k1", "HS256"), audience="api").issue("ann")
    response = client.get("/me", headers=auth(other_key))
    check_refusal(response, sent=True)
    assert 'error_description="bad signature"' in response.headers["WWW-Authenticate"]


def test_fastapi_refuses_two_authorization_headers(fastapi_setup: tuple[Any, Any]) -> None:
    client, service = fastapi_setup
    token = (service.access if hasattr(service, "access") else service).issue("ann")
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    check_refusal(client.get("/me", headers=headers), sent=True)


async def test_fastapi_refuses_a_revoked_token_at_the_next_request(tmp_path: Path) -> None:
    tokens = AsyncTokens(f"sqlite:///{tmp_path}/t.db", access())
    pair = await tokens.login("ann")
    with TestClient(fastapi_app(tokens)) as client:
        assert client.get("/me", headers=auth(pair.access_token)).status_code == 200
        await tokens.logout(await tokens.verify(pair.access_token))
        response = client.get("/me", headers=auth(pair.access_token))
        check_refusal(response, sent=True)
        assert "revoked" in response.json()["detail"]


# --- Flask ----------------------------------------------------------------------------------


def flask_app(tokens: Tokens | AccessTokens) -> Flask:
    app = Flask(__name__)
    calls: list[str] = []
    app.config["calls"] = calls

    @app.get("/me")
    @require_token(tokens)
    def me() -> dict[str, Any]:
        calls.append(g.token_claims["sub"])
        return {"user": g.token_claims["sub"]}

    return app


@pytest.fixture(params=["sync", "pure"])
def flask_setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    keys = access()
    service: Any = Tokens(f"sqlite:///{tmp_path}/t.db", keys) if request.param == "sync" else keys
    app = flask_app(service)
    yield app, service
    if isinstance(service, Tokens):
        service.close()


def test_flask_accepts_a_valid_token(flask_setup: tuple[Flask, Any]) -> None:
    app, service = flask_setup
    token = (service.access if hasattr(service, "access") else service).issue("ann")
    response = app.test_client().get("/me", headers=auth(token))
    assert response.status_code == 200 and response.get_json() == {"user": "ann"}
    assert app.config["calls"] == ["ann"]


def test_flask_refuses_missing_and_bad_tokens(flask_setup: tuple[Flask, Any]) -> None:
    app, _ = flask_setup
    client = app.test_client()
    check_refusal(client.get("/me"), sent=False)
    for headers in BAD_HEADERS:
        response = client.get("/me", headers=headers)
        check_refusal(response, sent=True)
        assert response.get_json()["error"] == "invalid_token"
    assert app.config["calls"] == []  # the view never ran


def test_flask_refuses_a_revoked_token(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    keys = AccessTokens(Key.generate("k1", "HS256"), audience="api", clock=lambda: now[0])
    tokens = Tokens(f"sqlite:///{tmp_path}/t.db", keys)
    client = flask_app(tokens).test_client()
    pair = tokens.login("ann")
    assert client.get("/me", headers=auth(pair.access_token)).status_code == 200
    now[0] += 5
    tokens.revoke_all("ann")
    response = client.get("/me", headers=auth(pair.access_token))
    check_refusal(response, sent=True)
    assert "revoked" in response.get_json()["error_description"]


# --- the header rules themselves ------------------------------------------------------------


def test_token_from_header_values() -> None:
    assert token_from([]) is None
    assert token_from(["Bearer abc.def.ghi"]) == "abc.def.ghi"
    assert token_from(["bearer   abc"]) == "abc"  # the scheme is case-insensitive
    for bad in (["Basic x"], ["Bearer"], ["Bearer a b"], ["Bearer é"], ["x", "y"]):
        with pytest.raises(InvalidToken):
            token_from(bad)


def test_challenge_never_breaks_the_header() -> None:
    assert challenge(None) == "Bearer"
    value = challenge(InvalidToken('bad "quote" \\ and\r\nnewline'), realm='a"b')
    assert "\r" not in value and "\n" not in value and '\\"' not in value
    assert value == (
        'Bearer realm="ab", error="invalid_token", error_description="bad quote  andnewline"'
    )


# --- a revocation store that cannot be reached: 503, never 200 and never 401 ------------------

DOWN = "redis://127.0.0.1:1/0"  # a real Redis client against a closed port: connection refused


def test_fastapi_answers_503_when_the_store_is_down() -> None:
    for service in (AsyncTokens(DOWN, access()), Tokens(DOWN, access())):
        token = service.access.issue("ann")
        with TestClient(fastapi_app(service)) as client:
            response = client.get("/me", headers=auth(token))
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"


def test_flask_answers_503_when_the_store_is_down() -> None:
    tokens = Tokens(DOWN, access())
    app = flask_app(tokens)
    response = app.test_client().get("/me", headers=auth(tokens.access.issue("ann")))
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert app.config["calls"] == []
