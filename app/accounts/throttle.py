"""Limits on signing in and registering, per client address and per account.

The counters live in Redis (the ``limits`` library, moving windows), so every web
process shares them. Every login attempt counts against its address; only failed
ones count against the account, and a success clears the account's count. When
Redis cannot be reached the limits are skipped (and logged): signing in must not
depend on them.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.errors import AppError
from app.settings import get_settings

log = logging.getLogger(__name__)

LOGIN_PER_ADDRESS = parse("60/10 minutes")
FAILED_LOGINS_PER_ACCOUNT = parse("5/15 minutes")
REGISTRATIONS_PER_ADDRESS = parse("10/hour")


class TooManyAttempts(AppError):
    status_code = 429

    def __init__(self, retry_after_s: int) -> None:
        minutes = max(1, math.ceil(retry_after_s / 60))
        super().__init__(f"Too many attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}.")
        self.retry_after_s = retry_after_s


@lru_cache
def _limiter() -> MovingWindowRateLimiter:
    url = get_settings().effective_redis_url
    # limits names a unix-socket Redis "redis+unix://"; redis-py names it "unix://".
    url = "redis+unix://" + url.removeprefix("unix://") if url.startswith("unix://") else url
    return MovingWindowRateLimiter(storage_from_string(url))


@dataclass(frozen=True)
class Throttle:
    item: RateLimitItem
    scope: str

    def _key(self, who: str) -> tuple[str, str]:
        return self.scope, who.strip().lower()

    def check(self, who: str) -> None:
        """Raise ``TooManyAttempts`` if ``who`` has no attempt left (counts nothing)."""
        try:
            if _limiter().test(self.item, *self._key(who)):
                return
            reset_at = _limiter().get_window_stats(self.item, *self._key(who)).reset_time
        except Exception:  # noqa: BLE001 - a limit store outage must not lock everyone out
            log.warning("rate limit store unreachable; %s not limited", self.scope, exc_info=True)
            return
        raise TooManyAttempts(max(1, int(reset_at - time.time())))

    def hit(self, who: str) -> None:
        try:
            _limiter().hit(self.item, *self._key(who))
        except Exception:  # noqa: BLE001
            log.warning("rate limit store unreachable; %s not counted", self.scope, exc_info=True)

    def clear(self, who: str) -> None:
        try:
            _limiter().clear(self.item, *self._key(who))
        except Exception:  # noqa: BLE001
            log.warning("rate limit store unreachable; %s not cleared", self.scope, exc_info=True)


login_by_address = Throttle(LOGIN_PER_ADDRESS, "login-address")
failed_logins_by_account = Throttle(FAILED_LOGINS_PER_ACCOUNT, "login-account")
registrations_by_address = Throttle(REGISTRATIONS_PER_ADDRESS, "register-address")
