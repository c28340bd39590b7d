"""SQL for conversations and messages."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.models import Conversation, Message


def conversations_for_user(
    session: Session, user_id: int, query: str | None = None, limit: int = 100
) -> list[Conversation]:
    statement = select(Conversation).where(Conversation.user_id == user_id)
    if query:
        in_messages = select(Message.id).where(
            Message.conversation_id == Conversation.id, Message.content.icontains(query, autoescape=True)
        )
        statement = statement.where(or_(Conversation.title.icontains(query, autoescape=True), in_messages.exists()))
    order = (Conversation.updated_at.desc(), Conversation.id.desc())
    return list(session.scalars(statement.order_by(*order).limit(limit)))


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


def delete(session: Session, obj: Conversation) -> None:
    session.delete(obj)
    session.flush()
