"""Celery tasks for memory: thin, take ids, safe to run twice."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery.signals import worker_ready

from app.db import session_scope
from app.memory import repository
from app.memory.keys import queued_mark, user_lock_name
from app.models import utcnow
from app.redis_client import HeartbeatLock, get_redis
from app.settings import get_settings
from app.worker import celery_app

log = logging.getLogger(__name__)


@celery_app.task(
    name="sealchat.consolidate_user_facts",
    bind=True,
    max_retries=5,
    acks_late=True,
)
def consolidate_user_facts_task(self, user_id: int, options: dict | None = None) -> str:  # noqa: ANN001
    from app.memory.consolidation import Busy

    try:
        return run_consolidation(user_id, options)
    except Busy:
        # Another worker holds this user's lock; it re-checks for new facts when
        # it finishes, but retry too in case it dies first.
        raise self.retry(countdown=30) from None


def run_consolidation(user_id: int, options: dict | None = None) -> str:
    """One consolidation in this process; then, if facts still wait (taught
    meanwhile, or put back after a refusal or a failure), the next one is queued.
    (Imported here, not at the top: the web process enqueues without loading torch.)"""
    from app.memory.consolidation import Busy, consolidate_user_facts, has_more_work

    try:
        summary = consolidate_user_facts(user_id, options)
    except Busy:
        raise
    except BaseException:
        if has_more_work(user_id):
            enqueue_consolidation(user_id)
        raise
    if has_more_work(user_id):
        enqueue_consolidation(user_id)
    return summary


QUEUED_MARK_TTL_S = 15 * 60
# The sweep leaves facts touched in the last two minutes alone: their task (or a
# `sealchat consolidate --now`) is on its way; a run in progress updates its facts every second.
RECOVERY_GRACE_S = 120


def enqueue_consolidation(user_id: int, options: dict | None = None) -> None:
    kwargs = {"options": options} if options else {}
    consolidate_user_facts_task.apply_async(args=[user_id], kwargs=kwargs, queue="consolidation")
    get_redis().set(queued_mark(user_id), "1", ex=QUEUED_MARK_TTL_S)


def enqueue_unfinished() -> int:
    with session_scope() as session:
        user_ids = repository.users_with_unfinished(session)
    for user_id in user_ids:
        enqueue_consolidation(user_id)
    return len(user_ids)


@celery_app.task(name="sealchat.recover_unfinished", ignore_result=True)
def recover_unfinished_task() -> int:
    """Every minute (Celery beat): queue a run for each user whose facts wait and whom
    no run holds. Whatever got lost (a task dropped with a dead Redis, retries used up
    behind a dead worker's lock), no fact stays pending or learning for long."""
    untouched_since = utcnow() - timedelta(seconds=RECOVERY_GRACE_S)
    with session_scope() as session:
        user_ids = repository.users_to_recover(session, get_settings().max_attempts, untouched_since)
    redis = get_redis()
    idle = [u for u in user_ids if not HeartbeatLock.held(user_lock_name(u)) and not redis.exists(queued_mark(u))]
    for user_id in idle:
        enqueue_consolidation(user_id)
    if idle:
        log.info("recovery: queued consolidation for %d user(s) with waiting facts", len(idle))
    return len(idle)


@worker_ready.connect
def _recover_unfinished_facts(**_kwargs: object) -> None:
    """Facts are never lost: re-enqueue every user with unfinished facts at start."""
    count = enqueue_unfinished()
    if count:
        log.info("re-enqueued consolidation for %d user(s) with unfinished facts", count)
