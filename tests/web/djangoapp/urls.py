"""The example's URLs plus views that exercise failure paths."""

from django.http import HttpRequest, HttpResponse
from django.urls import path
from exampleproject.urls import urlpatterns as example

from coatcheck.django import session_options


def boom(request: HttpRequest) -> HttpResponse:
    request.session["broken"] = True
    return HttpResponse("failed", status=500)


@session_options(lock_mode="optimistic")
def race(request: HttpRequest) -> HttpResponse:
    from coatcheck.django import manager

    request.session["x"] = "mine"
    other = manager().start(request.COOKIES["sessionid"])
    other["x"] = "theirs"
    other.write_close()
    return HttpResponse("ok")


def peek(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(request.session.get("visits")))


async def async_view(request: HttpRequest) -> HttpResponse:
    await request.session.aset("n", (await request.session.aget("n", 0)) + 1)
    if request.GET.get("cycle"):
        await request.session.acycle_key()
    return HttpResponse(str(await request.session.aget("n")))


def scope_counter(request: HttpRequest) -> HttpResponse:
    """A Django view using coatcheck's ASGI middleware session (scope["session"])."""
    session = request.scope["session"]  # type: ignore[attr-defined]
    session["n"] = session.get("n", 0) + 1
    return HttpResponse(str(session["n"]))


urlpatterns = [
    *example,
    path("boom", boom),
    path("race", race),
    path("peek", peek),
    path("async", async_view),
    path("scope-counter", scope_counter),
]
