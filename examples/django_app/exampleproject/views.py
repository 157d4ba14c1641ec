"""Views of the example: a counter, login/logout through django.contrib.auth, messages."""

from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt

from coatcheck.django import read_only


def index(request: HttpRequest) -> HttpResponse:
    request.session["visits"] = request.session.get("visits", 0) + 1
    notes = "".join(f"<li>{escape(m)}</li>" for m in messages.get_messages(request))
    user = escape(request.user.get_username() or "nobody")
    return HttpResponse(f"<p>Hello {user}; visits: {request.session['visits']}</p><ul>{notes}</ul>")


@csrf_exempt  # a real form would carry the CSRF token
def login_view(request: HttpRequest) -> HttpResponse:
    user = authenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return HttpResponse("bad credentials", status=403)
    login(request, user)  # cycle_key(): a new session id, the old one destroyed
    messages.info(request, f"Welcome, {user.get_username()}")
    return redirect("/")


@csrf_exempt
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)  # flush(): the stored session is destroyed, the cookie expired
    return redirect("/")


@read_only  # no lock and no write: safe to call many times at once
def whoami(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"user": request.user.get_username() or None})


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")  # never touches request.session: no store call
