"""A demo site for signal-dashboard: a small pizzeria whose every signal shows up on /signals/."""
