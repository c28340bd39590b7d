"""The consolidation lock on a real Redis: renewed while its holder lives, free
soon after the holder stops renewing (a dead worker), and reported lost when it
expires under the holder."""

from __future__ import annotations

import time

import redis

from app.redis_client import HeartbeatLock
from tests.conftest import TEST_REDIS_URL


def test_the_lock_lives_as_long_as_its_holder():
    client = redis.Redis.from_url(TEST_REDIS_URL)
    lock = HeartbeatLock("sealchat:test:heartbeat", ttl_s=1.5, client=client)
    assert lock.acquire()
    try:
        assert not HeartbeatLock("sealchat:test:heartbeat", ttl_s=1.5, client=client).acquire(), "one holder at a time"
        time.sleep(3.5)  # more than twice the expiry: only the renewals keep it
        assert HeartbeatLock.held("sealchat:test:heartbeat", client) and not lock.lost.is_set()
    finally:
        lock.release()
    assert not HeartbeatLock.held("sealchat:test:heartbeat", client)


def test_a_holder_that_stops_renewing_frees_the_lock_and_a_lost_lock_is_reported():
    client = redis.Redis.from_url(TEST_REDIS_URL)
    dead = HeartbeatLock("sealchat:test:dead", ttl_s=1.0, client=client)
    assert dead.acquire()
    dead._stop.set()  # the worker died: nothing renews the lock any more
    time.sleep(1.5)
    assert not HeartbeatLock.held("sealchat:test:dead", client), "free within its expiry, not the task's time limit"

    holder = HeartbeatLock("sealchat:test:lost", ttl_s=1.0, client=client)
    assert holder.acquire()
    client.delete("sealchat:test:lost")  # e.g. Redis restarted without its data
    deadline = time.monotonic() + 3
    while not holder.lost.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holder.lost.is_set()
    holder.release()
