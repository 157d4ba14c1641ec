"""A FastAPI dependency: the verified claims of the request's bearer token, or a 401.

::

    from fastapi import Depends, FastAPI
    from coatcheck.tokens.fastapi import bearer

    verified = bearer(tokens)  # AsyncTokens (revocation checked), Tokens, or AccessTokens

    @app.get("/me")
    async def me(claims: dict = Depends(verified)):
        return {"user": claims["sub"]}

A request without a token, or with one that is refused, gets ``401`` with
``WWW-Authenticate: Bearer`` (plus ``error="invalid_token"`` and the reason when a token was
sent, RFC 6750). When the revocation store cannot be reached the request gets ``503`` with
``Retry-After``: the token is neither accepted unchecked nor called invalid. With
:class:`~coatcheck.tokens.Tokens` (sync store calls) the dependency is a plain function,
which FastAPI runs in its thread pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException
from starlette.requests import Request

from ..errors import InvalidToken, RetryLater
from ._async import AsyncTokens
from ._bearer import challenge, token_from
from ._sync import Tokens
from .access import AccessTokens

__all__ = ["bearer"]

Claims = dict[str, Any]


def bearer(
    tokens: AsyncTokens | Tokens | AccessTokens, *, realm: str | None = None
) -> Callable[[Request], Awaitable[Claims]] | Callable[[Request], Claims]:
    """A dependency returning the bearer token's claims, verified by ``tokens``."""
    if isinstance(tokens, AsyncTokens):
        checker = tokens

        async def verified(request: Request) -> Claims:
            token = _token(request, realm)
            try:
                return await checker.verify(token)
            except InvalidToken as e:
                raise _unauthorized(e, realm) from None
            except RetryLater as e:
                raise _unavailable(e) from None

        return verified

    blocking = tokens

    def verified_sync(request: Request) -> Claims:
        token = _token(request, realm)
        try:
            return blocking.verify(token)
        except InvalidToken as e:
            raise _unauthorized(e, realm) from None
        except RetryLater as e:
            raise _unavailable(e) from None

    return verified_sync


def _token(request: Request, realm: str | None) -> str:
    try:
        token = token_from(request.headers.getlist("authorization"))
    except InvalidToken as e:
        raise _unauthorized(e, realm) from None
    if token is None:
        raise _unauthorized(None, realm)
    return token


def _unauthorized(error: InvalidToken | None, realm: str | None) -> HTTPException:
    detail = error.reason if error is not None else "a bearer token is required"
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": challenge(error, realm)})


def _unavailable(error: RetryLater) -> HTTPException:
    return HTTPException(
        503, detail="token check unavailable", headers={"Retry-After": str(error.retry_after)}
    )
