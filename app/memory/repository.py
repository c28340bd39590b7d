"""SQL for facts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from app.models import Fact, FactStatus, SelfEditCandidate

UNFINISHED = (FactStatus.PENDING, FactStatus.LEARNING, FactStatus.FORGETTING)


def add(session: Session, fact: Fact) -> Fact:
    session.add(fact)
    session.flush()
    return fact


def get_for_user(session: Session, user_id: int, fact_id: int) -> Fact | None:
    return session.scalar(select(Fact).where(Fact.id == fact_id, Fact.user_id == user_id))


def list_for_user(session: Session, user_id: int) -> list[Fact]:
    return list(session.scalars(select(Fact).where(Fact.user_id == user_id).order_by(Fact.id.desc())))


def with_status(session: Session, user_id: int, statuses: Iterable[str]) -> list[Fact]:
    return list(
        session.scalars(select(Fact).where(Fact.user_id == user_id, Fact.status.in_(list(statuses))).order_by(Fact.id))
    )


def with_slot(session: Session, user_id: int, slot_key: str | None) -> list[Fact]:
    if slot_key is None:
        return []
    return list(session.scalars(select(Fact).where(Fact.user_id == user_id, Fact.slot_key == slot_key)))


def by_ids(session: Session, user_id: int, ids: Iterable[int]) -> list[Fact]:
    ids = list(ids)
    if not ids:
        return []
    return list(session.scalars(select(Fact).where(Fact.user_id == user_id, Fact.id.in_(ids)).order_by(Fact.id)))


def users_with_unfinished(session: Session) -> list[int]:
    return list(session.scalars(select(Fact.user_id).where(Fact.status.in_(UNFINISHED)).distinct()))


def users_to_recover(session: Session, max_attempts: int, untouched_since: datetime) -> list[int]:
    """Users with work a run should pick up and nothing has touched since
    ``untouched_since``: pending facts, facts left learning, and forgets not yet
    verified that have attempts left. (A fact just taught has its task on the way.)"""
    waiting = or_(
        Fact.status.in_([FactStatus.PENDING, FactStatus.LEARNING]),
        and_(Fact.status == FactStatus.FORGETTING, Fact.attempts < max_attempts),
    )
    statement = select(Fact.user_id).where(waiting, Fact.updated_at < untouched_since).distinct()
    return list(session.scalars(statement))


def claim_pending(session: Session, user_id: int) -> list[int]:
    """Atomically move the user's pending facts to ``learning``; return their ids.

    A fact that arrives after this statement stays pending for the next run, so
    nothing is trained twice and nothing is skipped.
    """
    ids = list(
        session.scalars(
            select(Fact.id).where(Fact.user_id == user_id, Fact.status == FactStatus.PENDING).with_for_update()
        )
    )
    if ids:
        session.execute(
            update(Fact)
            .where(Fact.id.in_(ids), Fact.status == FactStatus.PENDING)
            .values(status=FactStatus.LEARNING, progress=0.0, stage="queued", error=None)
        )
    return ids


def reset_orphans(session: Session, user_id: int, max_crashes: int, checkpointed: int) -> int:
    """Facts left ``learning`` by a run that stopped (killed, or past its time limit;
    the caller holds the user lock) go back to pending, and the next run, planned
    the same, resumes from its checkpoint.

    ``checkpointed``: the self-edit candidates that run's checkpoint holds. A run
    that checkpointed more than the one before it made progress, and is not held
    against its facts; one that made none counts as a crash, so a fact that takes
    the worker down every time fails with the reason after ``max_crashes`` instead
    of being retried forever. (Crashes are counted apart from ``attempts``, the
    gate's refusals, which change the plan.)"""
    orphans = list(session.scalars(select(Fact).where(Fact.user_id == user_id, Fact.status == FactStatus.LEARNING)))
    for fact in orphans:
        fact.progress = 0.0
        if checkpointed > fact.checkpointed:
            fact.checkpointed = checkpointed
            fact.status, fact.stage = FactStatus.PENDING, f"resuming after {checkpointed} finished candidate(s)"
            continue
        fact.crashes += 1
        fact.error = f"the worker stopped while learning it ({fact.crashes} time{'s' if fact.crashes > 1 else ''})"
        if fact.crashes >= max_crashes:
            fact.status, fact.stage = FactStatus.FAILED, None
        else:
            fact.status, fact.stage = FactStatus.PENDING, "resuming after a worker stopped"
    session.flush()
    return len(orphans)


def release(session: Session, ids: list[int], stage: str = "waiting for its group") -> None:
    """Claimed facts another run will learn go back to pending, untouched (no attempt counted)."""
    if ids:
        session.execute(
            update(Fact)
            .where(Fact.id.in_(ids), Fact.status == FactStatus.LEARNING)
            .values(status=FactStatus.PENDING, progress=0.0, stage=stage)
        )


def no_longer_learning(session: Session, user_id: int, ids: Iterable[int], lock: bool = False) -> list[int]:
    """Those of ``ids`` that left ``learning`` (corrected or forgotten meanwhile).

    ``lock``: hold their rows until the transaction ends, so a forget or a
    correction that comes after waits for the caller's commit and sees its outcome.
    """
    ids = list(ids)
    if not ids:
        return []
    query = select(Fact.id, Fact.status).where(Fact.user_id == user_id, Fact.id.in_(ids))
    rows = session.execute(query.with_for_update() if lock else query).all()
    return sorted(i for i, status in rows if status != FactStatus.LEARNING)


def set_progress(session: Session, ids: list[int], stage: str, progress: float) -> None:
    session.execute(update(Fact).where(Fact.id.in_(ids)).values(stage=stage, progress=progress))


def erased(session: Session, user_id: int) -> list[Fact]:
    """Forgotten or corrected facts whose content is already erased (their tombstones)."""
    return list(
        session.scalars(
            select(Fact).where(
                Fact.user_id == user_id,
                Fact.status.in_([FactStatus.FORGOTTEN, FactStatus.SUPERSEDED]),
                Fact.text == "",
            )
        )
    )


def candidates_mentioning(session: Session, user_id: int, fact_id: int) -> list[SelfEditCandidate]:
    """The user's recorded candidates with a self-edit for ``fact_id`` (filtered here: JSON is not indexed)."""
    rows = session.scalars(select(SelfEditCandidate).where(SelfEditCandidate.user_id == user_id))
    return [c for c in rows if any(edit.get("fact_id") == fact_id for edit in c.self_edits or [])]
