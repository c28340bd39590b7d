"""SQL for self-edit policy versions, rounds, and the recorded candidates rounds learn from."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import (
    AdapterVersion,
    Fact,
    FactStatus,
    PolicyRound,
    PolicyVersion,
    RoundStatus,
    SelfEditCandidate,
    User,
    VersionStatus,
)


def get_version(session: Session, version_id: int) -> PolicyVersion | None:
    return session.get(PolicyVersion, version_id)


def active_version(session: Session) -> PolicyVersion | None:
    return session.scalar(select(PolicyVersion).where(PolicyVersion.status == VersionStatus.ACTIVE))


def list_versions(session: Session) -> list[PolicyVersion]:
    return list(session.scalars(select(PolicyVersion).order_by(PolicyVersion.version.desc())))


def add(session: Session, row: PolicyVersion | PolicyRound) -> None:
    session.add(row)
    session.flush()


def get_round(session: Session, round_id: int) -> PolicyRound | None:
    return session.get(PolicyRound, round_id)


def list_rounds(session: Session) -> list[PolicyRound]:
    return list(session.scalars(select(PolicyRound).order_by(PolicyRound.number)))


def unfinished_rounds(session: Session) -> list[PolicyRound]:
    return list(
        session.scalars(
            select(PolicyRound)
            .where(PolicyRound.status.in_([RoundStatus.QUEUED, RoundStatus.RUNNING]))
            .order_by(PolicyRound.number)
        )
    )


def max_number(session: Session) -> int:
    return max(
        session.scalar(select(func.max(PolicyRound.number))) or 0,
        session.scalar(select(func.max(PolicyVersion.version))) or 0,
    )


def sharing_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).where(User.share_self_edits.is_(True)).order_by(User.id)))


def shared_candidates(session: Session, limit_versions: int) -> list[tuple[SelfEditCandidate, AdapterVersion]]:
    """Recorded candidates of users who allow it, newest consolidations first."""
    versions = list(
        session.scalars(
            select(AdapterVersion)
            .join(User, User.id == AdapterVersion.user_id)
            .where(User.share_self_edits.is_(True))
            .order_by(AdapterVersion.id.desc())
            .limit(limit_versions)
        )
    )
    by_id = {v.id: v for v in versions}
    if not by_id:
        return []
    rows = session.scalars(
        select(SelfEditCandidate)
        .where(SelfEditCandidate.version_id.in_(list(by_id)))
        .order_by(SelfEditCandidate.version_id.desc(), SelfEditCandidate.candidate_index)
    )
    return [(row, by_id[row.version_id]) for row in rows]


def learned_facts(session: Session, user_ids: list[int]) -> dict[int, Fact]:
    """Facts still known (not forgotten, not corrected away) of these users, by id."""
    if not user_ids:
        return {}
    rows = session.scalars(select(Fact).where(Fact.user_id.in_(user_ids), Fact.status == FactStatus.LEARNED))
    return {f.id: f for f in rows}
