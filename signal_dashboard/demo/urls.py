from __future__ import annotations

from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("signals/", include("signal_dashboard.urls")),
    path("", include("signal_dashboard.demo.pizzeria.urls")),
    # Daphne serves no static files; with DEBUG on, Django does (empty otherwise).
    *staticfiles_urlpatterns(),
]
