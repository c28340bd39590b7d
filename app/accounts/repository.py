"""SQL for users."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import User


def get(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == email.lower()))


def by_api_key_hash(session: Session, key_hash: str) -> User | None:
    return session.scalar(select(User).where(User.api_key_hash == key_hash))


def count(session: Session) -> int:
    return session.scalar(select(func.count(User.id))) or 0


def all_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def add(session: Session, user: User) -> User:
    session.add(user)
    session.flush()
    return user
