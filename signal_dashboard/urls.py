from __future__ import annotations

from django.urls import path

from . import views

app_name = "signal_dashboard"

urlpatterns = [
    path("", views.index, name="index"),
    path("events/<str:event_id>/", views.event_detail, name="event"),
]
