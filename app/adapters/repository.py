"""SQL for adapter versions."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import AdapterVersion


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


def add(session: Session, version: AdapterVersion) -> AdapterVersion:
    session.add(version)
    session.flush()
    return version
