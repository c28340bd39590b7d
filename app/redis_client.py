"""Redis connections for locks and pub/sub (the queue itself goes through Celery)."""

from __future__ import annotations

import logging
import threading
from functools import lru_cache

import redis

from app.settings import get_settings

ADAPTER_CHANNEL = "sealchat:adapter-promoted"
log = logging.getLogger(__name__)


@lru_cache
def get_redis() -> redis.Redis:
    settings = get_settings()
    if settings.redis_url is None:
        from app.embedded_redis import ensure_running

        ensure_running(settings.redis_socket)
    return redis.Redis.from_url(settings.effective_redis_url, decode_responses=True)


class HeartbeatLock:
    """A Redis lock that lives only as long as its holder: a short expiry, renewed
    by a background thread every third of it. A worker that dies (kill -9, a lost
    machine) stops renewing, and the lock frees itself within ``ttl_s`` instead of
    outliving the worker by the whole task time limit. ``lost`` is set if a renewal
    fails (the lock expired or Redis restarted): the holder should stop."""

    def __init__(self, name: str, ttl_s: float = 60.0, client: redis.Redis | None = None) -> None:
        self.name = name
        self.ttl_s = ttl_s
        self.lost = threading.Event()
        # thread_local=False: the renewing thread must see the token the holder acquired with.
        self._lock = (client or get_redis()).lock(name, timeout=ttl_s, blocking=False, thread_local=False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        if not self._lock.acquire():
            return False
        self._thread = threading.Thread(target=self._renew, name=f"heartbeat {self.name}", daemon=True)
        self._thread.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self._lock.extend(self.ttl_s, replace_ttl=True)
            except Exception:  # LockNotOwnedError, or Redis unreachable
                log.warning("lock %s could not be renewed; its holder stops", self.name, exc_info=True)
                self.lost.set()
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self._lock.release()
        except Exception:  # already expired, or Redis gone: nothing left to free
            log.warning("lock %s was already gone at release", self.name)

    @staticmethod
    def held(name: str, client: redis.Redis | None = None) -> bool:
        return bool((client or get_redis()).exists(name))
