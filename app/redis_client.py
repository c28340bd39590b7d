"""Redis connections for locks and pub/sub (the queue itself goes through Celery)."""

from __future__ import annotations

from functools import lru_cache

import redis

from app.settings import get_settings

ADAPTER_CHANNEL = "sealchat:adapter-promoted"


@lru_cache
def get_redis() -> redis.Redis:
    settings = get_settings()
    if settings.redis_url is None:
        from app.embedded_redis import ensure_running

        ensure_running(settings.redis_socket)
    return redis.Redis.from_url(settings.effective_redis_url, decode_responses=True)
