"""A Flask decorator: the view runs only for a request with a valid bearer token.

::

    from flask import Flask, g
    from coatcheck.tokens.flask import require_token

    @app.get("/me")
    @require_token(tokens)  # Tokens (revocation checked) or AccessTokens
    def me():
        return {"user": g.token_claims["sub"]}

The verified claims are in ``flask.g.token_claims``. A request without a token, or with
one that is refused, gets ``401`` with ``WWW-Authenticate: Bearer`` (plus
``error="invalid_token"`` and the reason when a token was sent, RFC 6750) and a JSON body
``{"error": ..., "error_description": ...}``; the view is not called. When the revocation
store cannot be reached the request gets ``503`` with ``Retry-After`` instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Response, g, jsonify, request

from ..errors import InvalidToken, RetryLater
from ._bearer import challenge, token_from
from ._sync import Tokens
from .access import AccessTokens

__all__ = ["require_token"]

View = TypeVar("View", bound=Callable[..., Any])


def require_token(
    tokens: Tokens | AccessTokens, *, realm: str | None = None
) -> Callable[[View], View]:
    """Decorate a view so it needs a bearer token that ``tokens`` verifies."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                token = token_from(request.headers.getlist("Authorization"))
                if token is None:
                    return _unauthorized(None, realm)
                g.token_claims = tokens.verify(token)
            except InvalidToken as e:
                return _unauthorized(e, realm)
            except RetryLater as e:  # the revocation store is down: not the token's fault
                return _unavailable(e)
            return view(*args, **kwargs)

        return cast(View, guarded)

    return decorate


def _unauthorized(error: InvalidToken | None, realm: str | None) -> Response:
    body = {"error": "invalid_token", "error_description": error.reason} if error else {}
    response = jsonify(body or {"error": "unauthorized"})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = challenge(error, realm)
    return response


def _unavailable(error: RetryLater) -> Response:
    response = jsonify({"error": "temporarily_unavailable"})
    response.status_code = 503
    response.headers["Retry-After"] = str(error.retry_after)
    return response
