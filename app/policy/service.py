"""Self-edit policy: which version writes self-edits, rounds requested by an admin, the per-user opt-in.

Promotion and rollback move the ``active`` status in the database; workers read
it at the start of every consolidation, so a change applies to the next one.
No active version means the untrained base model writes self-edits.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from app.errors import AppError, NotFound
from app.models import PolicyRound, PolicyVersion, RoundStatus, User, VersionStatus, utcnow
from app.policy import repository
from app.settings import get_settings
from training.policy.rest_em_work import RecordedSelfEdit
from training.seal.policy import PolicyRef, PolicyStore

SOURCES = ("online", "squad")


def ref_for(version: PolicyVersion | None) -> PolicyRef | None:
    return PolicyRef(version.name, Path(version.path)) if version is not None else None


def active_ref(session: Session) -> PolicyRef | None:
    return ref_for(repository.active_version(session))


def promote(session: Session, version_id: int) -> PolicyVersion:
    version = repository.get_version(session, version_id)
    if version is None:
        raise NotFound(f"policy version {version_id} not found")
    if not Path(version.path).is_dir():
        raise AppError(f"policy files for {version.name} are missing at {version.path}", 409)
    make_active(session, version)
    session.commit()
    return version


def rollback(session: Session) -> PolicyVersion | None:
    """Back to the version the active one was trained from (or the untrained base model)."""
    current = repository.active_version(session)
    if current is None:
        raise AppError("the untrained base model already writes self-edits; nothing to roll back", 409)
    parent = repository.get_version(session, current.parent_id) if current.parent_id else None
    make_active(session, parent)
    session.commit()
    return parent


def make_active(session: Session, version: PolicyVersion | None) -> None:
    current = repository.active_version(session)
    if current is not None and current is not version:
        current.status = VersionStatus.INACTIVE
    if version is not None:
        version.status, version.promoted_at = VersionStatus.ACTIVE, utcnow()


def set_sharing(session: Session, user: User, enabled: bool) -> None:
    user.share_self_edits = enabled
    session.commit()


def online_records(session: Session) -> list[RecordedSelfEdit]:
    """What users who allow it taught, with each consolidation's K candidates and their rewards.

    Only facts still known count: a forgotten or corrected fact never trains the policy.
    """
    settings = get_settings()
    pairs = repository.shared_candidates(session, limit_versions=settings.policy_round.max_online_inputs)
    facts = repository.learned_facts(session, sorted({version.user_id for _, version in pairs}))
    records = []
    for candidate, version in pairs:
        for edit in candidate.self_edits:
            fact = facts.get(edit.get("fact_id"))
            quiz = edit.get("quiz") or []
            if fact is None or not quiz or not edit.get("lines"):
                continue
            records.append(
                RecordedSelfEdit(
                    input_id=f"fact{fact.id}-v{version.id}",
                    fact=fact.text,
                    index=candidate.candidate_index,
                    family=edit.get("family") or "rewrite",
                    lines=tuple(edit["lines"]),
                    recall=sum(bool(q.get("recalled")) for q in quiz) / len(quiz),
                    policy=candidate.settings.get("policy", "base"),
                )
            )
    return records


def request_round(session: Session, source: str, requested_by: User) -> PolicyRound:
    """Record a round to run; the caller enqueues it. One round at a time."""
    if source not in SOURCES:
        raise AppError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}", 422)
    running = repository.unfinished_rounds(session)
    if running:
        raise AppError(f"round {running[0].number} is still {running[0].status}; wait for it to finish", 409)
    if source == "online" and not online_records(session):
        sharing = len(repository.sharing_users(session))
        raise AppError(
            f"no recorded self-edits to learn from: {sharing} user(s) allow it, and none of them has a learnt fact yet",
            409,
        )
    number = PolicyStore(get_settings().policy_dir).next_number(at_least=repository.max_number(session) + 1)
    round_ = PolicyRound(number=number, source=source, status=RoundStatus.QUEUED, requested_by_id=requested_by.id)
    repository.add(session, round_)
    session.commit()
    return round_
