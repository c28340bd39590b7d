"""The store side of a consolidation: versions written, promoted, refused or abandoned.

Crash safety: a version's directory appears atomically (``training.memory.learn``) and
its row is written after it, so a crash leaves at most an orphan directory, never
a live half-written adapter. Promotion is the only pointer flip: the user's
``active_adapter_id``, set in the same transaction as the version's row.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from app.adapters import repository as versions
from app.adapters.groups import Group, assemble, build_dir, combined_sha256, groups_json, size_bytes
from app.adapters.service import notify_promoted
from app.db import session_scope
from app.memory import repository as facts_repo
from app.memory.erasure import erase_retired
from app.model_host import worker_router
from app.models import AdapterVersion, FactStatus, SelfEditCandidate, User, VersionStatus, utcnow
from app.settings import get_settings
from training.memory.gate import GateDecision
from training.memory.learn import LearnRequest, LearnResult
from training.replay import LOCALITY_PROMPTS
from training.routing.router import served_locality

log = logging.getLogger(__name__)


class Stale(Exception):
    """A fact this run learns was corrected or forgotten meanwhile: the run's plan is
    out of date. Its weights would hold a fact no version lists (so no later run
    would take it out), so the run stops, keeps nothing, and the next run replans."""

    def __init__(self, fact_ids: list[int]) -> None:
        super().__init__(f"fact(s) {', '.join(map(str, fact_ids))} changed while being learnt")


class LockLost(Stale):
    """The user's lock expired under this run (Redis restarted, or renewals failed):
    another run may start, so this one stops and keeps nothing (its checkpoint stays)."""

    def __init__(self, user_id: int) -> None:
        Exception.__init__(self, f"the consolidation lock of user {user_id} was lost")


def check_current(session: Session, user_id: int, learning: list[int], lock: bool = False) -> None:
    gone = facts_repo.no_longer_learning(session, user_id, learning, lock=lock)
    if gone:
        raise Stale(gone)


def next_version_number(session: Session, user_id: int, user_dir: Path) -> int:
    # Orphan directories from a crash between rename and commit also count, so a
    # version name is never reused.
    on_disk = [int(p.name[1:]) for p in user_dir.glob("v*") if p.name[1:].isdigit()]
    return max([versions.max_version(session, user_id), *on_disk]) + 1


def abandon(user_id: int, claimed: list[int], final: Path, exc: Stale) -> str:
    """Stop a run whose facts changed under it: nothing of it is kept, the facts
    still being learnt go back to pending (no attempt counted) for the next run,
    which this run's caller enqueues."""
    shutil.rmtree(build_dir(final), ignore_errors=True)
    with session_scope() as session:
        facts_repo.release(session, claimed, stage="queued again: a fact changed while it was learnt")
    log.info("user %s: %s abandoned: %s", user_id, final.name, exc)
    return f"{final.name}: abandoned ({exc})"


@dataclass(frozen=True)
class Build:
    """Where a version is assembled: its directory, the group it trained, the
    groups it links unchanged from its predecessor, and fact texts (served locality)."""

    final: Path
    target: int
    others: dict[int, Group]
    texts: dict[int, str]

    def served_locality(self, groups: dict[int, Group]) -> float:
        """Locality as served: a general prompt reaches an adapter only when the router
        sends it to one, and counts as changed if any group changed it."""
        changed = list(dict.fromkeys(p for _, g in sorted(groups.items()) for p in g.locality_changed))
        held = [(k, self.texts[i]) for k, g in sorted(groups.items()) for i in g.fact_ids if i in self.texts]
        facts, owners = [t for _, t in held], [k for k, _ in held]
        router = worker_router()
        return served_locality(LOCALITY_PROMPTS, changed, lambda p: router.route(p, facts, owners).outcome)


def drop_group(
    user_id: int,
    active: AdapterVersion | None,
    target: int,
    others: dict[int, Group],
    final: Path,
    forgetting: list[int],
    texts: dict[int, str],
) -> str:
    """A version without group ``target`` (all its facts forgotten): nothing is
    trained, the other groups are linked unchanged; no group left, the base model."""
    if not others:
        with session_scope() as session:
            user = session.get(User, user_id)
            if user.active_adapter_id:
                versions.get(session, user.active_adapter_id).status = VersionStatus.INACTIVE
            user.active_adapter_id = None
            finish_forgetting(session, user_id, forgetting, None)
        notify_promoted(user_id, 0)
        return "forgot every fact; serving the base model"
    build = Build(final, target, others, texts)
    with session_scope() as session:
        user = session.get(User, user_id)
        groups = assemble(final, others)
        fact_ids = sorted(i for g in groups.values() for i in g.fact_ids)
        live_recall = active.fact_recall if active else {}
        version = versions.add(
            session,
            AdapterVersion(
                user_id=user_id,
                version=int(final.name[1:]),
                name=f"u{user_id}-{final.name}",
                path=str(final),
                status=VersionStatus.ACTIVE,
                parent_id=active.id if active else None,
                fact_ids=fact_ids,
                fact_count=len(fact_ids),
                groups=groups_json(groups),
                metrics={
                    "group": target,
                    "dropped_group": True,
                    "removed_facts": forgetting,
                    "fact_recall": {k: v for k, v in live_recall.items() if k in fact_ids},
                    "served_locality": build.served_locality(groups),
                },
                weights_sha256=combined_sha256(groups),
                size_bytes=size_bytes(groups),
                promoted_at=utcnow(),
            ),
        )
        promote(session, user, version)
        finish_forgetting(session, user_id, forgetting, version)
        version_id = version.id
    notify_promoted(user_id, version_id)
    return f"{final.name}: dropped group {target} (its {len(forgetting)} fact(s) forgotten)"


def promote(session: Session, user: User, version: AdapterVersion) -> None:
    if user.active_adapter_id:
        previous = versions.get(session, user.active_adapter_id)
        if previous is not None:
            previous.status = VersionStatus.INACTIVE
    user.active_adapter_id = version.id


@dataclass(frozen=True)
class Predecessor:
    """The live version a new one is compared with: its per-fact recall."""

    id: int | None
    fact_recall: dict[int, float]
    learned_recall: dict[int, float]  # fallback: each fact's latest recall on record

    def recall_of(self, facts: dict[int, float]) -> dict[int, float]:
        out = {}
        for fact_id in facts:
            value = self.fact_recall.get(fact_id, self.learned_recall.get(fact_id))
            if value is not None:
                out[fact_id] = value
        return out


def finish_forgetting(session: Session, user_id: int, forgetting: list[int], live: AdapterVersion | None) -> None:
    """The facts are out of the ``live`` weights: forgotten, and erased with every
    other forgotten or corrected fact that ``live`` does not hold."""
    for fact in facts_repo.by_ids(session, user_id, forgetting):
        if fact.status == FactStatus.FORGETTING:
            fact.status, fact.stage, fact.progress, fact.error = FactStatus.FORGOTTEN, None, 1.0, None
    session.flush()
    erase_retired(session, user_id, live)


def record_version(
    user_id: int,
    request: LearnRequest,
    result: LearnResult,
    predecessor: Predecessor,
    kept: list[int],
    forgetting: list[int],
    decision: GateDecision,
    built: Build,
) -> int:
    """Assemble the version's directory and write its row (after the directory, so
    a crash leaves at most an orphan directory); promote it if the gate accepted
    it, else record the refusal (its directory stays, for the admin to inspect)."""
    outcomes = {o.fact_id: o for o in result.facts}
    with session_scope() as session:
        # Locked until this version is written: a forget or correction arriving now
        # waits, then finds the fact learnt (in the weights) and removes it properly.
        check_current(session, user_id, list(outcomes), lock=True)
        user = session.get(User, user_id)
        learned_ids = list(outcomes)
        trained = Group(
            built.target,
            tuple(sorted({*learned_ids, *kept})),
            result.output_dir,
            int(built.final.name[1:]),
            result.weights_sha256,
            tuple(result.locality_changed),
        )
        groups = assemble(built.final, {**built.others, built.target: trained})
        served = built.served_locality(groups)
        fact_ids = sorted(i for g in groups.values() for i in g.fact_ids)
        # Every fact's latest measured recall, carried forward version to version.
        fact_recall = {i: r for i, r in predecessor.fact_recall.items() if i in fact_ids}
        fact_recall.update({i: r for i, r in result.kept_recall.items() if i in fact_ids})
        fact_recall.update({i: outcomes[i].recall for i in learned_ids})
        version = versions.add(
            session,
            AdapterVersion(
                user_id=user_id,
                version=int(built.final.name[1:]),
                name=request.adapter_name,
                path=str(built.final),
                status=VersionStatus.ACTIVE if decision.accepted else VersionStatus.REJECTED,
                rejection_reason=None if decision.accepted else decision.reason,
                parent_id=predecessor.id,
                fact_ids=fact_ids,
                fact_count=len(fact_ids),
                groups=groups_json(groups),
                metrics={
                    "group": built.target,
                    "recall_new": result.recall if result.facts else None,
                    "recall_rehearsed": result.rehearsal_recall,
                    "recall_kept": decision.kept_recall,
                    "recall_kept_before": decision.previous_recall,
                    "kept_recall": result.kept_recall,
                    "removed_recall": result.removed_recall,
                    "removed_base_recall": result.removed_base_recall,
                    "fact_recall": fact_recall,
                    "locality": result.locality,
                    "locality_kl": result.locality_kl,
                    # The chosen update made smaller before it was written (``shrink_update``).
                    "update_scale": result.update_scale,
                    "attention_dropped": result.attention_dropped,
                    "locality_changed": list(result.locality_changed),
                    "served_locality": served,
                    "gate": decision.to_dict(),
                    "losses": [round(x, 4) for x in result.losses],
                    "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
                    "train": request.train.to_dict(),
                    "self_edit_family": request.self_edit_family,
                    # Trained from scratch because facts left the group (``training.memory.plan``).
                    "rebuilt": bool(request.removed),
                    "rehearse": request.rehearse,
                    "removed_facts": [f.fact_id for f in request.removed],
                    "k": request.k,
                    "chosen_candidate": result.chosen,
                    "warm_start": request.init_adapter is not None,
                },
                weights_sha256=combined_sha256(groups),
                size_bytes=size_bytes(groups),
                promoted_at=utcnow() if decision.accepted else None,
            ),
        )
        for candidate in result.candidates:
            summary = candidate.summary()
            session.add(
                SelfEditCandidate(
                    version_id=version.id,
                    user_id=user_id,
                    candidate_index=candidate.index,
                    chosen=candidate.index == result.chosen,
                    reward=candidate.recall,
                    settings=summary["settings"],
                    self_edits=summary["self_edits"],
                    metrics={
                        k: summary[k]
                        for k in (
                            "recall_new",
                            "recall_rehearsed",
                            "locality",
                            "locality_kl",
                            "loss_first_last",
                            "seconds",
                        )
                    },
                )
            )
        if not decision.accepted:
            refuse(session, user_id, learned_ids, forgetting, f"version {version.version} refused: {decision.reason}")
            return version.id
        for fact in facts_repo.by_ids(session, user_id, learned_ids):
            outcome = outcomes[fact.id]
            fact.status, fact.stage, fact.progress, fact.error = FactStatus.LEARNED, None, 1.0, None
            fact.recall = outcome.recall
            fact.self_edit = {
                "family": outcome.self_edit.family,
                "raw": outcome.self_edit.raw,
                "lines": list(outcome.self_edit.lines),
                "quiz": outcome.quiz,
            }
            fact.examples = [{"question": qa.question, "answer": qa.answer} for qa in outcome.examples]
            fact.learned_version_id = version.id
        # Earlier facts this version re-quizzed: the memory page shows their latest recall.
        for fact in facts_repo.by_ids(session, user_id, result.kept_recall):
            if fact.status == FactStatus.LEARNED:
                fact.recall = result.kept_recall[fact.id]
        promote(session, user, version)
        finish_forgetting(session, user_id, forgetting, version)
        return version.id


def refuse(session: Session, user_id: int, learning: list[int], forgetting: list[int], reason: str) -> None:
    """A refused version changes nothing live: its facts are retried (bounded) with the reason shown."""
    settings = get_settings()
    for fact in facts_repo.by_ids(session, user_id, [*learning, *forgetting]):
        fact.attempts += 1
        fact.error, fact.progress, fact.checkpointed = reason[:2000], 0.0, 0  # the retry is planned anew
        if fact.status == FactStatus.LEARNING:
            fact.stage = None
            fact.status = FactStatus.FAILED if fact.attempts >= settings.max_attempts else FactStatus.PENDING
        else:
            fact.stage = "not yet verified gone; retrying" if fact.attempts < settings.max_attempts else "not verified"


def record_failure(user_id: int, claimed: list[int], exc: Exception) -> None:
    """Claimed facts go back to pending to be retried, or fail with the reason."""
    settings = get_settings()
    with session_scope() as session:
        for fact in facts_repo.by_ids(session, user_id, claimed):
            if fact.status != FactStatus.LEARNING:
                continue
            fact.attempts += 1
            fact.checkpointed = 0  # the retry is planned anew
            fact.error = f"{type(exc).__name__}: {exc}"[:2000]
            fact.stage, fact.progress = None, 0.0
            fact.status = FactStatus.FAILED if fact.attempts >= settings.max_attempts else FactStatus.PENDING
