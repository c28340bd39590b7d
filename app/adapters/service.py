"""Promotion and rollback move the user's active pointer; then serving is told.

Versions are immutable: promotion never touches an adapter's files. The web
process learns of a change through Redis pub/sub, and also re-reads the user's
active version on every request, so a lost message never serves a stale adapter.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from app.adapters import repository
from app.adapters.groups import version_groups
from app.errors import AppError, NotFound
from app.memory import repository as facts_repository
from app.models import AdapterVersion, User, VersionStatus, utcnow
from app.redis_client import ADAPTER_CHANNEL, get_redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupRef:
    """One adapter of a version: its unique loaded name, its directory, and the
    texts of the facts it holds (what a question is routed by)."""

    index: int
    name: str
    path: Path
    facts: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdapterRef:
    """What serving needs to route a user: the version's unique name and directory,
    and its adapters, one per fact group (none given: the directory is one adapter)."""

    name: str
    path: Path
    groups: tuple[GroupRef, ...] = ()

    @property
    def parts(self) -> tuple[GroupRef, ...]:
        return self.groups or (GroupRef(0, self.name, self.path),)

    @property
    def sole_adapter(self) -> str | None:
        """The adapter that answers every question when there is one; None when a
        question must be routed among several groups (``training.routing.router``)."""
        return self.parts[0].name if len(self.parts) == 1 else None

    @property
    def facts(self) -> tuple[str, ...]:
        """The texts of the facts the version holds (what routing compares a message with)."""
        return tuple(text for part in self.parts for text in part.facts)


def ref_for(version: AdapterVersion | None, texts: Mapping[int, str] | None = None) -> AdapterRef | None:
    """``texts``: fact id -> text, for routing among the version's groups."""
    if version is None:
        return None
    texts = texts or {}
    groups = tuple(
        GroupRef(k, g.adapter_name(version.user_id), g.path, tuple(texts[i] for i in g.fact_ids if i in texts))
        for k, g in sorted(version_groups(version).items())
    )
    return AdapterRef(version.name, Path(version.path), groups)


def active_ref(session: Session, user: User) -> AdapterRef | None:
    session.refresh(user, ["active_adapter_id"])
    if user.active_adapter_id is None:
        return None
    version = repository.get(session, user.active_adapter_id)
    if version is None:
        return None
    texts = {f.id: f.text for f in facts_repository.by_ids(session, user.id, version.fact_ids or [])}
    return ref_for(version, texts)


def list_versions(session: Session, user: User) -> list[AdapterVersion]:
    return repository.list_for_user(session, user.id)


def promote(session: Session, user: User, version_id: int) -> AdapterVersion:
    """Make ``version_id`` the user's live adapter (also used for rollback)."""
    version = repository.get(session, version_id)
    if version is None or version.user_id != user.id:
        raise NotFound(f"adapter version {version_id} not found for user {user.id}")
    if version.status == VersionStatus.ERASED:
        raise AppError(f"{version.name} was erased (it held a forgotten or corrected fact) and cannot be served", 409)
    if not Path(version.path).is_dir():
        raise AppError(f"adapter files for {version.name} are missing at {version.path}", 409)
    if user.active_adapter_id and user.active_adapter_id != version.id:
        previous = repository.get(session, user.active_adapter_id)
        if previous is not None:
            previous.status = VersionStatus.INACTIVE
    version.status = VersionStatus.ACTIVE
    version.promoted_at = utcnow()
    user.active_adapter_id = version.id
    session.commit()
    notify_promoted(user.id, version.id)
    return version


def rollback(session: Session, user: User) -> AdapterVersion:
    """Go back to the version the active one was built on."""
    if user.active_adapter_id is None:
        raise AppError(f"user {user.id} has no active adapter to roll back", 409)
    current = repository.get(session, user.active_adapter_id)
    # The nearest earlier version that was not erased: a rollback never brings back a forgotten fact.
    earlier = repository.get(session, current.parent_id) if current and current.parent_id else None
    while earlier is not None and earlier.status == VersionStatus.ERASED:
        earlier = repository.get(session, earlier.parent_id) if earlier.parent_id else None
    if earlier is None:
        name = current.name if current else "this version"
        raise AppError(f"{name} has no earlier version that can be served (erased ones cannot)", 409)
    return promote(session, user, earlier.id)


def notify_promoted(user_id: int, version_id: int) -> None:
    try:
        get_redis().publish(ADAPTER_CHANNEL, json.dumps({"user_id": user_id, "version_id": version_id}))
    except Exception:  # serving re-reads the pointer on every request anyway
        log.exception("could not publish promotion of version %s for user %s", version_id, user_id)
