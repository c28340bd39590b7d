"""ORM models: users, conversations, messages, facts, adapter versions and the self-edit policy."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base


def utcnow() -> datetime:
    return datetime.now(UTC)


class FactStatus(enum.StrEnum):
    PENDING = "pending"
    LEARNING = "learning"
    LEARNED = "learned"
    FAILED = "failed"
    FORGETTING = "forgetting"
    FORGOTTEN = "forgotten"
    SUPERSEDED = "superseded"  # replaced by a correction; kept in history


class VersionStatus(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"  # superseded or rolled back; can be promoted again
    REJECTED = "rejected"  # refused by the gate; never served unless an admin promotes it
    ERASED = "erased"  # held a forgotten or corrected fact: files deleted, never served again


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    bridge_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Off by default: may this user's recorded self-edits train the shared self-edit policy?
    share_self_edits: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # On by default: the chat offers "Remember this?" under messages that state something about the user.
    suggest_memories: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    active_adapter_id: Mapped[int | None] = mapped_column(
        ForeignKey("adapter_versions.id", use_alter=True, ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    active_adapter: Mapped[AdapterVersion | None] = relationship(foreign_keys=[active_adapter_id])


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(120), default="New conversation")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.id", cascade="all, delete-orphan"
    )


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    adapter_name: Mapped[str | None] = mapped_column(String(64))
    bridge: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Fact(Base):
    __tablename__ = "facts"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=FactStatus.PENDING, index=True)
    stage: Mapped[str | None] = mapped_column(String(64))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # runs that failed or were refused
    crashes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # runs that died mid-way
    # Self-edit candidates the last stopped run on it had checkpointed (a run that
    # checkpoints more than that made progress, and its stop is not a crash).
    checkpointed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    source_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    learned_version_id: Mapped[int | None] = mapped_column(ForeignKey("adapter_versions.id", ondelete="SET NULL"))
    recall: Mapped[float | None] = mapped_column(Float)
    # The chosen self-edit and the Q/A pairs trained on: rehearsed by later versions.
    self_edit: Mapped[dict | None] = mapped_column(JSON)
    examples: Mapped[list | None] = mapped_column(JSON)
    # The single-valued attribute the fact sets ("name of cat"): a later fact on the
    # same slot, or an edit, supersedes it.
    slot_key: Mapped[str | None] = mapped_column(String(200), index=True)
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("facts.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class AdapterVersion(Base):
    __tablename__ = "adapter_versions"
    __table_args__ = (UniqueConstraint("user_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(16), default=VersionStatus.INACTIVE)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("adapter_versions.id", ondelete="SET NULL"))
    fact_ids: Mapped[list] = mapped_column(JSON, default=list)
    fact_count: Mapped[int] = mapped_column(Integer, default=0)
    # The version's fact groups, one LoRA adapter each (app/memory/groups.py):
    # {"<group>": {"fact_ids", "dir", "built", "sha256", "locality_changed"}};
    # None for a version from before groups, whose directory is one adapter.
    groups: Mapped[dict | None] = mapped_column(JSON)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def fact_recall(self) -> dict[int, float]:
        """Every fact's latest measured recall, carried forward version to version."""
        return _recall_by_id((self.metrics or {}).get("fact_recall"))

    @property
    def kept_recall(self) -> dict[int, float]:
        """The earlier facts' recall this version's gate measured."""
        return _recall_by_id((self.metrics or {}).get("kept_recall"))


def _recall_by_id(stored: dict | None) -> dict[int, float]:
    return {int(k): float(v) for k, v in (stored or {}).items()}


class SelfEditCandidate(Base):
    """One of the K candidates a consolidation tried: its self-edits, settings and reward."""

    __tablename__ = "self_edit_candidates"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    candidate_index: Mapped[int] = mapped_column(Integer)
    chosen: Mapped[bool] = mapped_column(Boolean, default=False)
    reward: Mapped[float] = mapped_column(Float)
    settings: Mapped[dict] = mapped_column(JSON)
    self_edits: Mapped[list] = mapped_column(JSON)
    metrics: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PolicyVersion(Base):
    """A version of the shared self-edit policy (a LoRA adapter that writes self-edits).

    Immutable directory; ``status`` active marks the one workers write with (none:
    the untrained base model). ``rejected``: its round did not improve the held-out score.
    """

    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(16), default=VersionStatus.INACTIVE, index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("policy_versions.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(16))  # "squad" (offline) | "online" (users' recorded candidates)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RoundStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class PolicyRound(Base):
    """One ReST-EM round requested from the admin page: its progress and metrics."""

    __tablename__ = "policy_rounds"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)  # also the version number it writes
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=RoundStatus.QUEUED, index=True)
    stage: Mapped[str | None] = mapped_column(String(64))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("policy_versions.id", ondelete="SET NULL"))
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
