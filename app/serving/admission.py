"""Admission control for replies: a bounded queue and a per-user rate.

The engine generates one reply at a time; requests that come while it is busy
wait their turn. At most ``SEALCHAT_MAX_QUEUED`` replies may be in flight in a
web process (generating or waiting). One more is refused at once with 503 and a
``Retry-After`` estimated from the queue and the recent reply time, instead of
waiting until something times out. Each user may also start at most
``SEALCHAT_CHAT_RATE`` replies (a moving window in Redis, shared by every web
process); beyond it the answer is 429. A reply is also cut off after
``REPLY_TIMEOUT_S``, so a slot is never held for ever.

Bounding the queue also bounds the database connections waiting replies hold
while the engine picks their adapter, which ran the pool dry before.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from limits import parse

from app.accounts.deps import ApiUser, CurrentUser
from app.accounts.throttle import Throttle, TooManyAttempts
from app.errors import AppError
from app.models import User
from app.settings import get_settings

log = logging.getLogger(__name__)

REPLY_TIMEOUT_S = 120.0
# Until replies have been timed: a guess at one reply's seconds on a CPU.
FIRST_GUESS_S = 5.0


class Busy(AppError):
    """Every slot of the queue is taken (503; ``retry_after_s`` for ``Retry-After``)."""

    status_code = 503

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"The assistant is busy right now; try again in {retry_after_s} s.")
        self.retry_after_s = retry_after_s


class TooManyReplies(TooManyAttempts):
    """The user started their quota of replies (429)."""

    def __init__(self, retry_after_s: int) -> None:
        AppError.__init__(self, f"You are sending messages too fast; try again in {retry_after_s} s.")
        self.retry_after_s = retry_after_s


class Ticket:
    """One admitted reply's slot; ``release`` (idempotent) gives it back."""

    def __init__(self, queue: Admission) -> None:
        self._queue, self._started, self._released = queue, time.monotonic(), False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._queue._done(time.monotonic() - self._started)


class Admission:
    """The bounded queue of one web process (thread-safe)."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._lock = threading.Lock()
        self._in_flight = 0
        self._mean_s = FIRST_GUESS_S

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def admit(self) -> Ticket:
        with self._lock:
            if self._in_flight >= self.slots:
                # The queue drains one reply at a time: a slot frees in about one reply's time.
                raise Busy(max(1, math.ceil(self._mean_s)))
            self._in_flight += 1
        return Ticket(self)

    def _done(self, seconds: float) -> None:
        with self._lock:
            self._in_flight -= 1
            # Seconds per reply, without the wait: what the time in flight was, spread
            # over the replies that were ahead of it (a moving average).
            per_reply = seconds / max(1, self._in_flight + 1)
            self._mean_s = 0.8 * self._mean_s + 0.2 * per_reply


def replies_by_user() -> Throttle:
    return Throttle(parse(get_settings().chat_rate), "replies-user")


async def admitted(request: Request) -> AsyncIterator[Ticket]:
    """The request's slot in the queue, or 503 at once. Declared before the
    user's dependency, it runs first, on the event loop: a refusal waits for no
    thread and no database. The slot is given back when the reply stream ends, or
    at the latest when the response is over (the exit of a dependency with yield
    runs after a streamed response is sent)."""
    ticket = request.app.state.admission.admit()
    try:
        yield ticket
    finally:
        ticket.release()


def _within_rate(user: User) -> None:
    throttle = replies_by_user()
    try:
        throttle.check(str(user.id))
    except TooManyAttempts as exc:
        raise TooManyReplies(exc.retry_after_s) from None
    throttle.hit(str(user.id))


def page_user_within_rate(user: CurrentUser) -> User:
    """The signed-in user, if they have replies left in their rate (else 429)."""
    _within_rate(user)
    return user


def api_user_within_rate(user: ApiUser) -> User:
    """The API key's user, if they have replies left in their rate (else 429)."""
    _within_rate(user)
    return user


Admitted = Annotated[Ticket, Depends(admitted)]
PageUserWithinRate = Annotated[User, Depends(page_user_within_rate)]
ApiUserWithinRate = Annotated[User, Depends(api_user_within_rate)]
