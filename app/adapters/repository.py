"""SQL for adapter versions."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import AdapterVersion, SelfEditCandidate, VersionStatus


def get(session: Session, version_id: int) -> AdapterVersion | None:
    return session.get(AdapterVersion, version_id)


def list_for_user(session: Session, user_id: int) -> list[AdapterVersion]:
    return list(
        session.scalars(
            select(AdapterVersion).where(AdapterVersion.user_id == user_id).order_by(AdapterVersion.version.desc())
        )
    )


def max_version(session: Session, user_id: int) -> int:
    return session.scalar(select(func.max(AdapterVersion.version)).where(AdapterVersion.user_id == user_id)) or 0


def refused_children(session: Session, parent_id: int) -> list[AdapterVersion]:
    """Versions built on ``parent_id`` that the gate refused, oldest first."""
    return list(
        session.scalars(
            select(AdapterVersion)
            .where(AdapterVersion.parent_id == parent_id, AdapterVersion.status == VersionStatus.REJECTED)
            .order_by(AdapterVersion.version)
        )
    )


def add(session: Session, version: AdapterVersion) -> AdapterVersion:
    session.add(version)
    session.flush()
    return version


def candidates_by_version(session: Session, version_ids: list[int]) -> dict[int, list[SelfEditCandidate]]:
    grouped: dict[int, list[SelfEditCandidate]] = {v: [] for v in version_ids}
    if version_ids:
        rows = session.scalars(
            select(SelfEditCandidate)
            .where(SelfEditCandidate.version_id.in_(version_ids))
            .order_by(SelfEditCandidate.version_id, SelfEditCandidate.candidate_index)
        )
        for row in rows:
            grouped[row.version_id].append(row)
    return grouped
