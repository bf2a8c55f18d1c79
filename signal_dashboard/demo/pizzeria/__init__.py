"""The demo's pizzeria: models, receivers and views that give the dashboard something to show."""
