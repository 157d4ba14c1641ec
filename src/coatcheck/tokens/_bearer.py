"""The ``Authorization: Bearer`` header (RFC 6750), read and answered without a framework."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import InvalidToken

_BEARER = re.compile(r"Bearer +([A-Za-z0-9._~+/-]+=*) *", re.IGNORECASE)
_UNSAFE = re.compile(r"[^ !#-\[\]-~]")  # error_description: printable ASCII, no " or \


def token_from(values: Sequence[str]) -> str | None:
    """The bearer token of the request's ``Authorization`` header values.

    None when there is no header (the client sent no credentials); InvalidToken for a
    header that is not one well-formed bearer token (another scheme, two headers, spaces).
    """
    if not values:
        return None
    if len(values) > 1:
        raise InvalidToken("more than one Authorization header")
    matched = _BEARER.fullmatch(values[0])
    if matched is None:
        raise InvalidToken("the Authorization header is not a Bearer token")
    return matched.group(1)


def challenge(error: InvalidToken | None, realm: str | None = None) -> str:
    """The ``WWW-Authenticate`` value of a 401: no error code when no token was sent."""
    params = []
    if realm is not None:
        params.append(f'realm="{_UNSAFE.sub("", realm)}"')
    if error is not None:
        params.append('error="invalid_token"')
        params.append(f'error_description="{_UNSAFE.sub("", error.reason)}"')
    return "Bearer " + ", ".join(params) if params else "Bearer"
