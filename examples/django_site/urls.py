from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("contact/", views.contact, name="contact"),
    path("contact/thanks/", views.contact_thanks, name="contact-thanks"),
    path("cafes/", views.cafes_stream, name="cafes"),
    path("api/cafes.json", views.api_cafes, name="api-cafes"),
]
