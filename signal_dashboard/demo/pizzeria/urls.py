from __future__ import annotations

from django.urls import path

from . import views

app_name = "pizzeria"

urlpatterns = [
    path("", views.home, name="home"),
    path("pizzas/new/", views.create_pizza, name="create_pizza"),
    path("pizzas/<int:pk>/order/", views.place_order, name="place_order"),
    path("orders/<int:pk>/bake/", views.bake_order, name="bake_order"),
    path("orders/<int:pk>/bake-later/", views.bake_later, name="bake_later"),
    path("orders/<int:pk>/deliver/", views.deliver_order, name="deliver_order"),
    path("orders/<int:pk>/delete/", views.delete_order, name="delete_order"),
    path("login/", views.log_in, name="log_in"),
    path("logout/", views.log_out, name="log_out"),
    path("login/fail/", views.failed_login, name="failed_login"),
    path("traffic/bake-batch/", views.bake_batch, name="bake_batch"),
]
