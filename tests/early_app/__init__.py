"""An app whose models module connects a receiver twice, as Django imports the models of every
installed app after their AppConfigs and before any ready() (see test_apps.py)."""
