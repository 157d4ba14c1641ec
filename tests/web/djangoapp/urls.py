"""The example's URLs plus views that exercise failure paths and Django's session API."""

from datetime import timedelta

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from exampleproject.urls import urlpatterns as example

from coatcheck.django import SessionStore, manager, session_options
from tests.web.conformance import lock_free


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


def key(request: HttpRequest) -> HttpResponse:
    """The common Django idiom for a session key to hand out (a cart, an upload)."""
    if not request.session.session_key:
        request.session.save()
    return HttpResponse(request.session.session_key)


def save_then_change(request: HttpRequest) -> HttpResponse:
    request.session["a"] = 1
    request.session.save()  # persisted and unlocked now
    request.session["b"] = request.session["a"] + 1  # read again, relocked, saved at the end
    return HttpResponse(request.session.session_key)


def expiry(request: HttpRequest) -> HttpResponse:
    value = request.GET["value"]
    request.session["n"] = request.session.get("n", 0) + 1
    if value == "past-date":
        request.session.set_expiry(timezone.now() - timedelta(hours=1))
    elif value == "date":
        request.session.set_expiry(timezone.now() + timedelta(hours=1))
    elif value != "none":
        request.session.set_expiry(int(value))
    return JsonResponse(
        {"age": request.session.get_expiry_age(), "n": request.session["n"]},
    )


def logged_out_elsewhere(request: HttpRequest) -> HttpResponse:
    request.session["x"] = 1  # read and locked
    SessionStore(request.session.session_key).delete()  # "log out everywhere", meanwhile
    return HttpResponse("ok")


@session_options(lock_mode="optimistic")
def logged_out_elsewhere_optimistic(request: HttpRequest) -> HttpResponse:
    return logged_out_elsewhere(request)


def cached(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(str(request.session.get("visits")))
    response["Cache-Control"] = "private, max-age=60"
    return response


def not_json(request: HttpRequest) -> HttpResponse:
    request.session["when"] = timezone.now()  # a datetime: JSON cannot hold it as it is
    return HttpResponse("ok")


@session_options(read_only=True)
def write_read_only(request: HttpRequest) -> HttpResponse:
    request.session["x"] = 1
    return HttpResponse("ok")


@session_options(skip=True)
def skipped(request: HttpRequest) -> HttpResponse:
    if request.GET.get("use"):
        request.session.get("visits")
    return HttpResponse("skipped")


async def async_view(request: HttpRequest) -> HttpResponse:
    await request.session.aset("n", (await request.session.aget("n", 0)) + 1)
    if request.GET.get("cycle"):
        await request.session.acycle_key()
    return HttpResponse(str(await request.session.aget("n")))


async def async_api(request: HttpRequest) -> HttpResponse:
    """Django 5's async SessionBase API, save() and changes after it included."""
    session = request.session
    await session.aupdate({"a": 1, "b": 2})
    assert await session.asetdefault("c", 3) == 3
    assert await session.apop("b") == 2 and await session.ahas_key("a")
    await session.aset_expiry(600)
    await session.asave()
    await session.aset("d", 4)  # after asave(): read again and relocked, in Django's thread
    if request.GET.get("flush"):
        await session.aflush()
        await session.aset("after", True)
    return JsonResponse(
        {"items": dict(await session.aitems()), "age": await session.aget_expiry_age()}
    )


def scope_counter(request: HttpRequest) -> HttpResponse:
    """A Django view using coatcheck's ASGI middleware session (scope["session"])."""
    session = request.scope["session"]  # type: ignore[attr-defined]
    session["n"] = session.get("n", 0) + 1
    return HttpResponse(str(session["n"]))


# --- the web conformance routes (tests/web/conformance.py), under /conf/ ------------------


def _n(request: HttpRequest) -> int:
    request.session["n"] = request.session.get("n", 0) + 1
    return int(request.session["n"])


def conf_count(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(_n(request)))


def conf_none(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@session_options(read_only=True)
def conf_peek(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(request.session.get("n")))


def conf_early(request: HttpRequest) -> HttpResponse:
    _n(request)
    request.session.save()  # session_write_close()
    free = lock_free(manager(), str(request.session.session_key))
    return HttpResponse("free" if free else "held")


def conf_login(request: HttpRequest) -> HttpResponse:
    request.session["user"] = "ada"
    request.session.core.regenerate_id(grace=30.0)  # cycle_key(), with a grace window
    return HttpResponse("in")


def conf_logout(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    return HttpResponse("out")


def conf_clear(request: HttpRequest) -> HttpResponse:
    request.session.clear()
    return HttpResponse("cleared")


def conf_fail(request: HttpRequest) -> HttpResponse:
    request.session["n"] = 999
    return HttpResponse("failed", status=500)


def conf_bad(request: HttpRequest) -> HttpResponse:
    request.session["n"] = {1, 2}  # not JSON: a bug in the app
    return HttpResponse("bad")


def conf_cached(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(str(request.session.get("n")))
    response["Cache-Control"] = "public, max-age=60"
    return response


conformance = [
    path("conf/count", conf_count),
    path("conf/none", conf_none),
    path("conf/peek", conf_peek),
    path("conf/early", conf_early),
    path("conf/login", csrf_exempt(conf_login)),
    path("conf/logout", csrf_exempt(conf_logout)),
    path("conf/clear", csrf_exempt(conf_clear)),
    path("conf/fail", conf_fail),
    path("conf/bad", conf_bad),
    path("conf/cached", conf_cached),
]


# the same routes as async views, under /conf-async/ (Django's async session API)


async def _an(request: HttpRequest) -> int:
    n = await request.session.aget("n", 0) + 1
    await request.session.aset("n", n)
    return int(n)


async def aconf_count(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(await _an(request)))


async def aconf_none(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@session_options(read_only=True)
async def aconf_peek(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(await request.session.aget("n")))


async def aconf_early(request: HttpRequest) -> HttpResponse:
    await _an(request)
    await request.session.asave()
    free = await sync_to_async(lock_free)(manager(), str(request.session.session_key))
    return HttpResponse("free" if free else "held")


async def aconf_login(request: HttpRequest) -> HttpResponse:
    await request.session.aset("user", "ada")
    await sync_to_async(request.session.core.regenerate_id)(grace=30.0)
    return HttpResponse("in")


async def aconf_logout(request: HttpRequest) -> HttpResponse:
    await request.session.aflush()
    return HttpResponse("out")


async def aconf_clear(request: HttpRequest) -> HttpResponse:
    await sync_to_async(request.session.clear)()
    return HttpResponse("cleared")


async def aconf_fail(request: HttpRequest) -> HttpResponse:
    await request.session.aset("n", 999)
    return HttpResponse("failed", status=500)


async def aconf_bad(request: HttpRequest) -> HttpResponse:
    await request.session.aset("n", {1, 2})
    return HttpResponse("bad")


async def aconf_cached(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(str(await request.session.aget("n")))
    response["Cache-Control"] = "public, max-age=60"
    return response


conformance_async = [
    path("conf-async/count", aconf_count),
    path("conf-async/none", aconf_none),
    path("conf-async/peek", aconf_peek),
    path("conf-async/early", aconf_early),
    path("conf-async/login", csrf_exempt(aconf_login)),
    path("conf-async/logout", csrf_exempt(aconf_logout)),
    path("conf-async/clear", csrf_exempt(aconf_clear)),
    path("conf-async/fail", aconf_fail),
    path("conf-async/bad", aconf_bad),
    path("conf-async/cached", aconf_cached),
]

urlpatterns = [
    *example,
    path("boom", boom),
    path("race", race),
    path("peek", peek),
    path("key", key),
    path("save-then-change", save_then_change),
    path("expiry", expiry),
    path("logged-out-elsewhere", logged_out_elsewhere),
    path("logged-out-elsewhere-optimistic", logged_out_elsewhere_optimistic),
    path("cached", cached),
    path("not-json", not_json),
    path("write-read-only", write_read_only),
    path("skipped", skipped),
    path("async", async_view),
    path("async-api", async_api),
    path("scope-counter", scope_counter),
    *conformance,
    *conformance_async,
]
