from __future__ import annotations

from django.db import models


class Topping(models.Model):
    name = models.CharField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name


class Pizza(models.Model):
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=6, decimal_places=2)
    toppings = models.ManyToManyField(Topping, related_name="pizzas", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    class Status(models.TextChoices):
        PLACED = "placed"
        BAKED = "baked"
        DELIVERED = "delivered"

    pizza = models.ForeignKey(Pizza, on_delete=models.CASCADE, related_name="orders")
    quantity = models.PositiveSmallIntegerField(default=1)
    customer_name = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PLACED)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Order #{self.pk}: {self.quantity} x {self.pizza} for {self.customer_name}"
