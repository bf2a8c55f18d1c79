"""Live tracing of every Django signal."""

from __future__ import annotations

__version__ = "0.1.0"
