"""Forgetting erases: what a forgotten or corrected fact leaves behind is a tombstone.

Once no live weights hold such a fact (at once when none ever did, otherwise when
the version built without it goes live), its text, its chosen self-edit, its
training questions and its entries in every recorded self-edit candidate are
deleted; the row keeps only its id, status and dates. Every other version of the
user that learnt it is marked ``erased`` and its directory deleted (live versions
hold their own hard links to the files they share), so neither a rollback nor an
admin's promotion can bring the fact back.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from sqlalchemy.orm import Session

from app.adapters import repository as versions
from app.memory import repository as facts_repo
from app.models import AdapterVersion, Fact, FactStatus, VersionStatus

log = logging.getLogger(__name__)

RETIRED = (FactStatus.FORGOTTEN, FactStatus.SUPERSEDED)


def erase_fact(session: Session, fact: Fact) -> None:
    """Blank the fact's content and its self-edits in every recorded candidate."""
    fact.text = ""
    fact.self_edit = None
    fact.examples = None
    fact.slot_key = None
    fact.recall = None
    fact.error = None
    fact.stage = None
    for candidate in facts_repo.candidates_mentioning(session, fact.user_id, fact.id):
        kept = [edit for edit in candidate.self_edits if edit.get("fact_id") != fact.id]
        if kept:
            candidate.self_edits = kept
        else:
            session.delete(candidate)


def erase_retired(session: Session, user_id: int, live: AdapterVersion | None) -> list[int]:
    """Erase every forgotten or corrected fact of the user that the ``live`` version
    does not hold, and retire the other versions that learnt one. Returns the ids erased now."""
    held = set(live.fact_ids or []) if live else set()
    live_version_id = live.id if live else None
    erased = [f for f in facts_repo.with_status(session, user_id, RETIRED) if f.id not in held and f.text]
    for fact in erased:
        erase_fact(session, fact)
    gone = {f.id for f in erased} | {f.id for f in facts_repo.erased(session, user_id)}
    if gone:
        for version in versions.list_for_user(session, user_id):
            if version.id == live_version_id or version.status == VersionStatus.ERASED:
                continue
            if gone & set(version.fact_ids or []):
                version.status = VersionStatus.ERASED
                version.rejection_reason = "erased: it held a fact that was forgotten or corrected"
                shutil.rmtree(Path(version.path), ignore_errors=True)
                log.info("user %s: version %s erased (held a forgotten or corrected fact)", user_id, version.name)
    if erased:
        log.info("user %s: erased %d forgotten or corrected fact(s)", user_id, len(erased))
    return [f.id for f in erased]
