"""The recording switch: whether signal sends are traced at all (the dashboard's "Stop
recording"), who set it and when. Backends keep it for every process they reach."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Switch:
    """Whether signal sends are traced (the dashboard's "Stop recording"), who set it, when."""

    on: bool = True
    by: str = ""  # the user's name
    at: float = 0.0  # wall-clock seconds

    @classmethod
    def set(cls, on: bool, by: str) -> Switch:
        return cls(on, by, time.time())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Switch:
        return cls(bool(data["on"]), str(data["by"]), float(data["at"]))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
