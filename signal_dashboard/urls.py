from __future__ import annotations

from django.urls import path

from .web import export, views

app_name = "signal_dashboard"

urlpatterns = [
    path("", views.index, name="index"),
    path("events/<str:event_id>/", views.event_detail, name="event"),
    path("receivers/", views.receiver_detail, name="receiver"),
    path("requests/<str:origin_key>/", views.request_detail, name="request"),
    path("registry/", views.registry, name="registry"),
    path("recording/", views.recording, name="recording"),
    path("events.ndjson", export.events_ndjson, name="events_ndjson"),
    path("stats.json", export.stats_json, name="stats_json"),
]
