"""Django middleware for coatcheck sessions: ``coatcheck.django.SessionMiddleware``.

Use it in place of ``django.contrib.sessions.middleware.SessionMiddleware``. It runs the
request lifecycle every coatcheck adapter runs: a response's session is saved, or aborted
for a 5xx (unless ``save_on_error``); the cookie comes from coatcheck's Config; ``Vary:
Cookie`` and Cache-Control follow :func:`~coatcheck.web.common.merge_headers`. A store
outage or a busy lock is answered by ``WebOptions.on_error`` (503 + Retry-After), a
concurrent change by a 409, a session deleted by another request (a logout elsewhere) by
Django's ``SessionInterrupted`` (400); other errors propagate. Per-view options:
:func:`session_options` and :func:`read_only`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.sessions.backends.base import UpdateError  # type: ignore[import-untyped]
from django.contrib.sessions.exceptions import SessionInterrupted  # type: ignore[import-untyped]
from django.contrib.sessions.middleware import (  # type: ignore[import-untyped]
    SessionMiddleware as DjangoSessionMiddleware,
)
from django.http import HttpRequest, HttpResponse, HttpResponseBase  # type: ignore[import-untyped]

from ..config import Config, LockMode
from ..cookies import CookieAction
from ..errors import CoatcheckError
from .common import (
    ANSWERED,
    RouteOptions,
    environ_client,
    mark_route,
    merge_headers,
    request_cookie,
    route_options,
)
from .django_session import SessionStore, manager, web_options

F = TypeVar("F", bound=Callable[..., Any])
INTERRUPTED = (  # Django's own words, so logs and tests read the same
    "The request's session was deleted before the request completed. "
    "The user may have logged out in a concurrent request, for example."
)


def session_options(
    *, read_only: bool = False, lock_mode: LockMode | None = None, skip: bool = False
) -> Callable[[F], F]:
    """Decorate a view: ``read_only=True`` reads without a lock and never writes (PHP's
    ``read_and_close``); ``lock_mode`` overrides the configured mode for this view;
    ``skip=True`` gives it no session at all."""
    options = RouteOptions(read_only=read_only, lock_mode=lock_mode, skip=skip)
    return lambda view: mark_route(view, options)


def read_only(view: F) -> F:
    """Shorthand for ``@session_options(read_only=True)``."""
    return session_options(read_only=True)(view)


class SessionMiddleware(DjangoSessionMiddleware):  # type: ignore[misc]  # Django is untyped
    """``request.session`` as a coatcheck :class:`SessionStore`, saved by the lifecycle.

    A view that puts another engine's session in ``request.session`` gets Django's own
    handling of it.
    """

    def process_request(self, request: HttpRequest) -> None:
        client = environ_client(request.META, web_options())
        name = manager().config.cookie_name
        # the raw header: request.COOKIES keeps one value of a name sent twice
        cookie = request_cookie(request.META.get("HTTP_COOKIE"), name, client)
        if cookie is None and name not in request.META.get("HTTP_COOKIE", ""):
            cookie = request.COOKIES.get(name)  # set in code (RequestFactory, middleware)
        request.session = SessionStore(cookie, client=client)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        route = route_options(view)
        session = getattr(request, "session", None)
        if route is not None and isinstance(session, SessionStore):
            session.configure(route)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, ANSWERED):
            return _answer(exception)
        return None

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> Any:
        session = getattr(request, "session", None)
        if not isinstance(session, SessionStore):
            return super().process_response(request, response)
        try:
            cookie, headers = session.finish(response.status_code)
        except UpdateError:
            raise SessionInterrupted(INTERRUPTED) from None
        except ANSWERED as e:
            session.abort()
            return _answer(e)
        if cookie is not None:
            _set_cookie(response, session.config, cookie)
        for name, value in merge_headers(list(response.items()), headers):
            response[name] = value
        return response


def _set_cookie(response: HttpResponseBase, config: Config, action: CookieAction) -> None:
    """Through Django's cookie API, so ``response.cookies`` (and the test client) see it."""
    if action.value is None:
        response.delete_cookie(
            config.cookie_name,
            path=config.cookie_path,
            domain=config.cookie_domain,
            samesite=config.cookie_samesite,
        )
        return
    response.set_cookie(
        config.cookie_name,
        action.value,
        max_age=action.max_age,
        path=config.cookie_path,
        domain=config.cookie_domain,
        secure=config.cookie_secure,
        httponly=config.cookie_httponly,
        samesite=config.cookie_samesite,
    )


def _answer(exc: CoatcheckError) -> HttpResponse:
    status, headers, body = web_options().on_error(exc)
    response = HttpResponse(body, status=status)
    for name, value in headers:
        response[name] = value
    return response
