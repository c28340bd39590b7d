""" "Remember this?": what the chat offers under a user's message.

The web process holds one ``StatementDetector`` (training/memory/statements.py) on
``app.state``, loaded at start-up beside the model. For a message that states
something about the user it offers to remember it, or, when the message is close
in meaning to a fact they already taught, to correct that fact with it. Nothing is
stored until the user clicks; a user can turn the offers off on their account page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.memory import repository
from app.memory.service import ACTIVE
from app.models import User
from training.memory.statements import StatementDetector


@dataclass(frozen=True)
class Offer:
    """Sent to the browser with the stored message (the ``user`` SSE event)."""

    kind: str  # "remember" | "correct"
    replaces_id: int | None = None
    replaces_text: str | None = None

    def as_json(self) -> dict:
        return asdict(self)


def detector_of(request: Request) -> StatementDetector | None:
    """None while it loads (or in a web process started without models): no offers then."""
    return getattr(request.app.state, "statements", None)


DetectorDep = Annotated[StatementDetector | None, Depends(detector_of)]


def offer_for(session: Session, user: User, detector: StatementDetector | None, text: str) -> Offer | None:
    if detector is None or not user.suggest_memories:
        return None
    facts = repository.with_status(session, user.id, ACTIVE)
    suggestion = detector.suggest(text, [f.text for f in facts])
    if suggestion is None:
        return None
    if suggestion.replaces is None:
        return Offer("remember")
    old = facts[suggestion.replaces]
    return Offer("correct", old.id, old.text)


def set_enabled(user: User, enabled: bool) -> None:
    user.suggest_memories = enabled
