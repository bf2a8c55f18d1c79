from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class PizzeriaConfig(AppConfig):
    name = "signal_dashboard.demo.pizzeria"
    label = "pizzeria"
    verbose_name = "Pizzeria (demo)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth import signals as auth
        from django.db.models import signals as model

        from . import signals
        from .models import Order, Pizza

        model.post_save.connect(signals.order_saved, sender=Order)
        model.post_save.connect(signals.refresh_menu_board, sender=Pizza)
        model.m2m_changed.connect(signals.toppings_changed, sender=Pizza.toppings.through)
        model.pre_delete.connect(signals.order_deleting, sender=Order)
        signals.pizza_done.connect(signals.print_kitchen_tickets)
        signals.pizza_done.connect(signals.check_oven)
        signals.pizza_done.connect(signals.announce_pizza)
        auth.user_logged_in.connect(signals.count_login)
        auth.user_logged_out.connect(signals.count_logout)
        auth.user_login_failed.connect(signals.log_login_failed)
        if getattr(settings, "PIZZERIA_SIGNAL_MISTAKES", False):
            from . import mistakes

            mistakes.connect_a_receiver_that_gets_lost()
            mistakes.import_the_kitchen_display_twice()
