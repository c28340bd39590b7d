"""SQL for conversations and messages."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Conversation, Message


def conversations_for_user(session: Session, user_id: int, limit: int = 100) -> list[Conversation]:
    return list(
        session.scalars(
            select(Conversation)
            .where(Conversation.user_id == user_id)
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
            .limit(limit)
        )
    )


def conversation_for_user(session: Session, user_id: int, conversation_id: int) -> Conversation | None:
    return session.scalar(
        select(Conversation).where(Conversation.id == conversation_id, Conversation.user_id == user_id)
    )


def message_for_user(session: Session, user_id: int, message_id: int) -> Message | None:
    return session.scalar(
        select(Message).join(Conversation).where(Message.id == message_id, Conversation.user_id == user_id)
    )


def add(session: Session, obj: Conversation | Message) -> None:
    session.add(obj)
    session.flush()
