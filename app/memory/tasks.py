"""Celery tasks for memory: thin, take ids, safe to run twice."""

from __future__ import annotations

import logging

from app.db import session_scope
from app.memory import repository
from app.worker import celery_app

log = logging.getLogger(__name__)


@celery_app.task(
    name="sealchat.consolidate_user_facts",
    bind=True,
    max_retries=5,
    acks_late=True,
)
def consolidate_user_facts_task(self, user_id: int, options: dict | None = None) -> str:  # noqa: ANN001
    from app.memory.consolidation import Busy, consolidate_user_facts

    try:
        return consolidate_user_facts(user_id, options)
    except Busy:
        # Another worker holds this user's lock; it re-checks for new facts when
        # it finishes, but retry too in case it dies first.
        raise self.retry(countdown=30) from None


def enqueue_consolidation(user_id: int, options: dict | None = None) -> None:
    kwargs = {"options": options} if options else {}
    consolidate_user_facts_task.apply_async(args=[user_id], kwargs=kwargs, queue="consolidation")


def enqueue_unfinished() -> int:
    with session_scope() as session:
        user_ids = repository.users_with_unfinished(session)
    for user_id in user_ids:
        enqueue_consolidation(user_id)
    return len(user_ids)
