"""Progress reports from long worker jobs, written to the database at a bounded rate."""

from __future__ import annotations

import time
from collections.abc import Callable


class ThrottledProgress:
    """Passes ``(stage, fraction)`` to ``write`` at most every ``interval`` seconds; the final report always."""

    def __init__(self, write: Callable[[str, float], None], interval: float) -> None:
        self.write, self.interval, self.last = write, interval, 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last < self.interval and fraction < 1.0:
            return
        self.last = now
        self.write(stage, round(fraction, 3))
