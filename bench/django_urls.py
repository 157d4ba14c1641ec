"""The Django side of bench/web_apps.py: its routes (``ROOT_URLCONF``), imported once set up."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path

from .web_apps import START

_count = [0]


def _none(request: HttpRequest) -> bool:
    return not hasattr(request, "session")


def start(request: HttpRequest) -> HttpResponse:
    if not _none(request):
        request.session.update(START)
    return HttpResponse("0")


def incr(request: HttpRequest) -> HttpResponse:
    if _none(request):  # the app with no session middleware: count in the process
        _count[0] += 1
        return HttpResponse(str(_count[0]))
    session: Any = request.session
    n = session["n"] + 1
    session["n"] = n
    return HttpResponse(str(n))


def get(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(request.session.get("n")))


urlpatterns = [path("start", start), path("incr", incr), path("get", get)]
