"""Teaching, listing and forgetting facts; which facts the bridge still needs."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable

from sqlalchemy.orm import Session

from app.errors import AppError, NotFound
from app.memory import repository
from app.memory.erasure import erase_retired
from app.models import Fact, FactStatus, User
from training.language.phrasing import fact_slot

log = logging.getLogger(__name__)

MIN_FACT_CHARS = 3
MAX_FACT_CHARS = 1000


def clean_fact_text(text: str) -> str:
    """Normalise whitespace and refuse empty, oversized or control-character input."""
    text = unicodedata.normalize("NFC", text)
    bad = [ch for ch in text if unicodedata.category(ch) in ("Cc", "Cs", "Co") and ch not in "\n\t"]
    if bad:
        raise AppError(f"fact contains control characters ({bad[0]!r})", 422)
    text = " ".join(text.split())
    if len(text) < MIN_FACT_CHARS:
        raise AppError(f"a fact needs at least {MIN_FACT_CHARS} characters", 422)
    if len(text) > MAX_FACT_CHARS:
        raise AppError(f"a fact may have at most {MAX_FACT_CHARS} characters (got {len(text)})", 422)
    return text


ACTIVE = (FactStatus.PENDING, FactStatus.LEARNING, FactStatus.LEARNED)


def teach(
    session: Session, user: User, text: str, source_message_id: int | None = None, replaces: Fact | None = None
) -> Fact:
    """Store the fact (pending) and commit it before anything is enqueued.

    A fact that sets the same single-valued slot as an earlier one ("I moved from
    Boston to Denver" after "I live in Boston"), or an edit (``replaces``),
    supersedes the earlier fact: it is retired (kept in history, marked
    superseded) and the next version is built without it.
    """
    text = clean_fact_text(text)
    slot = fact_slot(text)
    fact = repository.add(
        session,
        Fact(
            user_id=user.id,
            text=text,
            status=FactStatus.PENDING,
            source_message_id=source_message_id,
            slot_key=slot.key if slot else None,
        ),
    )
    older = [f for f in repository.with_slot(session, user.id, fact.slot_key) if f.id != fact.id] if slot else []
    if replaces is not None and replaces not in older:
        older.append(replaces)
    for old in older:
        if old.status in ACTIVE:
            old.status, old.superseded_by_id, old.stage = FactStatus.SUPERSEDED, fact.id, None
            log.info("user %s: fact %s supersedes fact %s", user.id, fact.id, old.id)
    _erase_what_no_weights_hold(session, user)
    session.commit()
    request_consolidation(user.id)
    return fact


def edit(session: Session, user: User, fact_id: int, text: str) -> Fact:
    """Correct a fact: the new text supersedes it (the old one stays in history)."""
    old = get(session, user, fact_id)
    if old.status not in ACTIVE:
        raise AppError(f"fact {fact_id} is {old.status} and cannot be edited", 409)
    if clean_fact_text(text) == old.text:
        return old
    return teach(session, user, text, replaces=old)


def _erase_what_no_weights_hold(session: Session, user: User) -> None:
    """A fact forgotten or corrected before any live version held it is erased at once
    (the others when the version without them goes live: app/memory/erasure.py)."""
    session.flush()
    erase_retired(session, user.id, user.active_adapter)


def request_consolidation(user_id: int) -> None:
    """Enqueue learning; if the broker is down the fact stays pending and is picked up later."""
    from app.memory.tasks import enqueue_consolidation

    try:
        enqueue_consolidation(user_id)
    except Exception:  # the fact is already stored; the worker's start-up sweep finds it
        log.exception("could not enqueue consolidation for user %s; fact stays pending", user_id)


def get(session: Session, user: User, fact_id: int) -> Fact:
    fact = repository.get_for_user(session, user.id, fact_id)
    if fact is None:
        raise NotFound(f"fact {fact_id} not found")
    return fact


def list_facts(session: Session, user: User) -> list[Fact]:
    return repository.list_for_user(session, user.id)


def forget(session: Session, user: User, fact_id: int) -> Fact:
    """Forget a fact. One already in the weights is taken out of them by a new version
    (its group rebuilt from scratch without it)."""
    fact = get(session, user, fact_id)
    if fact.status in (FactStatus.FORGOTTEN, FactStatus.FORGETTING):
        return fact
    in_weights = fact.status in (FactStatus.LEARNED, FactStatus.LEARNING) or (
        # A corrected fact stays in the live weights until the correction's version is live.
        fact.status == FactStatus.SUPERSEDED and fact.learned_version_id is not None
    )
    fact.status = FactStatus.FORGETTING if in_weights else FactStatus.FORGOTTEN
    fact.stage = "waiting to be taken out of the weights" if in_weights else None
    _erase_what_no_weights_hold(session, user)
    session.commit()
    if in_weights:
        request_consolidation(user.id)
    return fact


def known_facts(session: Session, user: User, held: Iterable[str] = ()) -> list[str]:
    """What routing compares a message with: the facts the user taught and has not taken
    back, and those the live adapter holds (``held``, their texts, read with the
    version: after an admin's rollback it may hold one taken back since, and it
    answers from it)."""
    statuses = (FactStatus.PENDING, FactStatus.LEARNING, FactStatus.LEARNED)
    texts = [f.text for f in repository.with_status(session, user.id, statuses)]
    return list(dict.fromkeys([*texts, *held]))


def taught_facts(session: Session, user: User) -> list[Fact]:
    """The facts the user taught and has not taken back, oldest first."""
    return repository.with_status(session, user.id, ACTIVE)


def bridge_facts(session: Session, user: User) -> list[str]:
    """Facts the weights do not hold yet: given to the model in its system prompt."""
    return [f.text for f in repository.with_status(session, user.id, (FactStatus.PENDING, FactStatus.LEARNING))]
