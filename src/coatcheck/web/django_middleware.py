"""Django middleware for coatcheck sessions: Django's own, plus what locking needs.

Use ``coatcheck.django.SessionMiddleware`` in place of
``django.contrib.sessions.middleware.SessionMiddleware``. On top of Django's behaviour it:
honours per-view :func:`session_options` (read-only, lock mode); releases the lock (and
extends the idle deadline) of sessions that were read but not modified; drops changes on
a 5xx; answers 503 (+ Retry-After) / 409 for store outages, lock timeouts and conflicts;
and marks responses that used the session ``Cache-Control: private, no-store``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware  # type: ignore[import-untyped]
from django.http import HttpRequest, HttpResponse, HttpResponseBase  # type: ignore[import-untyped]
from django.utils.cache import patch_cache_control  # type: ignore[import-untyped]

from ..config import LockMode
from ..errors import CoatcheckError
from .common import environ_client, error_response
from .django_session import SessionStore, web_options

F = TypeVar("F", bound=Callable[..., Any])
_VIEW_OPTIONS = "_coatcheck_session_options"


@dataclasses.dataclass(frozen=True, slots=True)
class ViewOptions:
    read_only: bool = False
    lock_mode: LockMode | None = None


def session_options(
    *, read_only: bool = False, lock_mode: LockMode | None = None
) -> Callable[[F], F]:
    """Decorate a view: ``read_only=True`` reads without a lock and never writes (PHP's
    ``read_and_close``); ``lock_mode`` overrides the configured mode for this view.
    """
    options = ViewOptions(read_only, lock_mode)

    def mark(view: F) -> F:
        setattr(view, _VIEW_OPTIONS, options)
        return view

    return mark


def read_only(view: F) -> F:
    """Shorthand for ``@session_options(read_only=True)``."""
    return session_options(read_only=True)(view)


class SessionMiddleware(DjangoSessionMiddleware):  # type: ignore[misc]  # Django is untyped
    """Django's SessionMiddleware, made lock-aware for coatcheck sessions."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        session = request.session
        if isinstance(session, SessionStore):
            session.client = environ_client(request.META, web_options())

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        options = getattr(view, _VIEW_OPTIONS, None)
        session = getattr(request, "session", None)
        started = isinstance(session, SessionStore) and session.started
        if isinstance(options, ViewOptions) and isinstance(session, SessionStore) and not started:
            session.read_only = options.read_only
            session.lock_mode = options.lock_mode

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, CoatcheckError):
            return _error(exception)
        return None

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> Any:
        session = getattr(request, "session", None)
        if not isinstance(session, SessionStore) or not session.started:
            return super().process_response(request, response)
        status = response.status_code
        if not web_options().saves(status):
            session.abandon()
        try:
            if status >= 500 and session.modified and not session.core.closed:
                # save_on_error: Django's own middleware never saves a 5xx (nor sends its
                # cookie), so the data is saved here.
                session.save()
            response = super().process_response(request, response)
            session.close_unsaved()
        except CoatcheckError as e:
            session.abandon()
            return _error(e)
        patch_cache_control(response, private=True, no_store=True)
        return response


def _error(exc: CoatcheckError) -> HttpResponse:
    status, headers, body = error_response(exc)
    response = HttpResponse(body, status=status)
    for name, value in headers:
        response[name] = value
    return response
