"""Views of the Django example.

Every view works with or without consent-gate in front: without it there is no consent on the
request and the views behave as if nothing was granted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from django import forms
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from .context_processors import request_consent

CAFES = [
    {"id": 1, "name": "Kissa Sabou", "city": "Kyoto", "known_for": "siphon coffee and toast"},
    {"id": 2, "name": "Cafe Bibliotic Hello!", "city": "Kyoto", "known_for": "books and banana trees"},
    {"id": 3, "name": "Chatei Hatou", "city": "Tokyo", "known_for": "hand-poured blends"},
    {"id": 4, "name": "Lion", "city": "Tokyo", "known_for": "classical music, listened to in silence"},
]

#: Where the streamed page splits its template; the cafe list is produced in between.
ITEMS_MARKER = "<!-- cafe-items -->"


async def home(request: HttpRequest) -> HttpResponse:
    # The view may decide server-side too; the template decides with {% if consent|allows:"..." %}.
    consent = request_consent(request)
    ads = consent is not None and consent.allows("ads")
    return render(request, "django_site/home.html", {"cafes": CAFES, "show_ad_unit": ads})


class ContactForm(forms.Form):
    name = forms.CharField(max_length=60)
    message = forms.CharField(widget=forms.Textarea, max_length=2000)


def contact(request: HttpRequest) -> HttpResponse:
    """A POST form protected by Django's CSRF middleware; the name goes into the session."""
    if request.method == "POST":
        form = ContactForm(request.POST)
        if form.is_valid():
            request.session["contact_name"] = form.cleaned_data["name"]
            return redirect("contact-thanks")
    else:
        form = ContactForm()
    return render(request, "django_site/contact.html", {"form": form})


@require_GET
def contact_thanks(request: HttpRequest) -> HttpResponse:
    return render(request, "django_site/thanks.html", {"name": request.session.get("contact_name")})


async def _stream_cafes(request: HttpRequest) -> AsyncIterator[str]:
    page = render_to_string("django_site/cafes_stream.html", {"count": len(CAFES) * 5}, request)
    top, bottom = page.split(ITEMS_MARKER, 1)
    yield top  # the browser starts on <head> (and consent-gate injects there) right away
    for round_ in range(5):
        for cafe in CAFES:
            await asyncio.sleep(0)  # stands in for a slow query
            yield f"<li>{cafe['name']} ({cafe['city']}): {cafe['known_for']} [{round_ + 1}]</li>\n"
    yield bottom


@require_GET
async def cafes_stream(request: HttpRequest) -> StreamingHttpResponse:
    # Under ASGI Django wants an *async* iterator for streaming responses; a sync one is
    # consumed in a thread and Django warns about it.
    return StreamingHttpResponse(_stream_cafes(request), content_type="text/html; charset=utf-8")


@require_GET
async def api_cafes(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"cafes": CAFES})
