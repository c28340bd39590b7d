"""Celery tasks for the self-edit policy: thin, take ids, safe to run twice."""

from __future__ import annotations

import logging

from celery.signals import worker_ready

from app.db import session_scope
from app.policy import repository
from app.settings import get_settings
from app.worker import celery_app

log = logging.getLogger(__name__)

# A round trains and quizzes dozens of adapters: far longer than a consolidation.
# If the worker dies or the limit kills it, the redelivered task resumes from the round's files.
_LIMIT = get_settings().policy_round.time_limit_s


@celery_app.task(
    name="sealchat.improve_policy",
    bind=True,
    max_retries=3,
    acks_late=True,
    time_limit=_LIMIT,
    soft_time_limit=_LIMIT - 30,
)
def improve_policy_task(self, round_id: int) -> str:  # noqa: ANN001
    from app.policy.rounds import RoundBusy, run_policy_round

    try:
        return run_policy_round(round_id)
    except RoundBusy:
        raise self.retry(countdown=60) from None


def enqueue_round(round_id: int) -> None:
    improve_policy_task.apply_async(args=[round_id], queue="consolidation")


def enqueue_unfinished_rounds() -> int:
    """A round whose worker died resumes from its files when a worker starts."""
    with session_scope() as session:
        ids = [r.id for r in repository.unfinished_rounds(session)]
    for round_id in ids:
        enqueue_round(round_id)
    return len(ids)


@worker_ready.connect
def _resume_unfinished_rounds(**_kwargs: object) -> None:
    rounds = enqueue_unfinished_rounds()
    if rounds:
        log.info("re-enqueued %d unfinished self-edit policy round(s)", rounds)
