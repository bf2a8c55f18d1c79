"""tests/urls.py, and django-debug-toolbar's views (tests/settings_toolbar.py)."""

from __future__ import annotations

from debug_toolbar.toolbar import debug_toolbar_urls

from tests.urls import urlpatterns as project_urls

urlpatterns = [*project_urls, *debug_toolbar_urls()]
