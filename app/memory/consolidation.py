"""Consolidation: learn a user's new facts into a new adapter version (runs in the worker).

One run per user at a time (a Redis lock). A run claims the user's pending facts,
builds a version with ``training.learn.learn_facts`` (warm-started from the active
version and rehearsing its facts, or rebuilt from scratch when a fact must be
forgotten), records it and promotes it. Facts that arrive meanwhile stay pending
and are picked up by the next run, which this run enqueues when it finishes.

Crash safety: the version directory appears atomically and its DB row is written
after it, so a crash leaves at most an orphan directory, never a live half-written
adapter; claimed facts go back to pending (or fail after ``max_attempts``).
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from pathlib import Path

from sqlalchemy.orm import Session

from app.adapters import repository as versions
from app.adapters.service import notify_promoted
from app.db import session_scope
from app.memory import repository as facts_repo
from app.models import AdapterVersion, Fact, FactStatus, SelfEditCandidate, User, VersionStatus, utcnow
from app.redis_client import get_redis
from app.settings import get_settings
from training.adapters import AdapterHost
from training.candidates import TrainingChoice
from training.learn import FACT_GRID, QA, FactToLearn, LearnRequest, LearnResult, learn_facts
from training.lora import TrainConfig
from training.model import load_model, prepare_base_model

log = logging.getLogger(__name__)


class Busy(Exception):
    """Another consolidation holds this user's lock."""


@lru_cache
def worker_host() -> AdapterHost:
    """The worker's base model, loaded once per process."""
    settings = get_settings()
    return AdapterHost(load_model(prepare_base_model(settings.base_model, settings.models_dir)))


def _as_input(fact: Fact) -> FactToLearn:
    examples = tuple(QA(e["question"], e["answer"]) for e in (fact.examples or []))
    return FactToLearn(fact.id, fact.text, examples)


def _next_version_number(session: Session, user_id: int, user_dir: Path) -> int:
    # Orphan directories from a crash between rename and commit also count, so a
    # version name is never reused.
    on_disk = [int(p.name[1:]) for p in user_dir.glob("v*") if p.name[1:].isdigit()]
    return max([versions.max_version(session, user_id), *on_disk]) + 1


class _ProgressWriter:
    """Writes progress to the claimed facts at most every ``interval`` seconds."""

    def __init__(self, fact_ids: list[int], interval: float = 1.0) -> None:
        self.fact_ids, self.interval, self.last = fact_ids, interval, 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last < self.interval and fraction < 1.0:
            return
        self.last = now
        with session_scope() as session:
            facts_repo.set_progress(session, self.fact_ids, stage, round(fraction, 3))


def consolidate_user_facts(user_id: int) -> str:
    """Run one consolidation for ``user_id``; returns a short summary."""
    settings = get_settings()
    lock = get_redis().lock(f"sealchat:consolidate:{user_id}", timeout=settings.task_time_limit_s + 60, blocking=False)
    if not lock.acquire():
        raise Busy(user_id)
    try:
        return _consolidate_locked(user_id)
    finally:
        lock.release()
        # Facts taught while we ran (or put back after a failure) are still
        # pending: learn them in a new run.
        with session_scope() as session:
            more = facts_repo.with_status(session, user_id, (FactStatus.PENDING,))
        if more:
            from app.memory.tasks import enqueue_consolidation

            enqueue_consolidation(user_id)


def _consolidate_locked(user_id: int) -> str:
    settings = get_settings()
    with session_scope() as session:
        user = session.get(User, user_id)
        if user is None:
            return f"user {user_id} no longer exists"
        facts_repo.reset_orphans(session, user_id)
        claimed = facts_repo.claim_pending(session, user_id)
        forgetting = [f.id for f in facts_repo.with_status(session, user_id, (FactStatus.FORGETTING,))]
        if not claimed and not forgetting:
            return "nothing to learn"
        active = versions.get(session, user.active_adapter_id) if user.active_adapter_id else None
        kept_ids = [i for i in (active.fact_ids if active else []) if i not in forgetting]
        kept = [f for f in facts_repo.by_ids(session, user_id, kept_ids) if f.status == FactStatus.LEARNED]
        new = facts_repo.by_ids(session, user_id, claimed)
        user_dir = settings.adapters_dir / f"user_{user_id}"
        number = _next_version_number(session, user_id, user_dir)
        request = LearnRequest(
            adapter_name=f"u{user_id}-v{number}",
            new_facts=[_as_input(f) for f in new],
            rehearsal=[_as_input(f) for f in kept],
            output_dir=user_dir / f"v{number}",
            replay_cache=settings.replay_cache,
            # Forgetting must remove the fact from the weights: rebuild from scratch.
            init_adapter=Path(active.path) if active and not forgetting else None,
            train=TrainConfig(learning_rate=settings.learning_rate, max_steps=settings.train_steps, seed=number),
            self_edit_family=settings.self_edit_family,
            k=settings.self_edit_k,
            # Candidate 0 uses the configured learning rate; the others explore the grid.
            grid=(TrainingChoice(settings.learning_rate, 8, True), *FACT_GRID[1:]),
        )
        parent_id = active.id if active else None
    user_dir.mkdir(parents=True, exist_ok=True)
    log.info(
        "user %s: learning %d fact(s), keeping %d, forgetting %d -> %s",
        user_id,
        len(claimed),
        len(kept),
        len(forgetting),
        request.adapter_name,
    )

    if not request.new_facts and not request.rehearsal:
        # Every remaining fact is being forgotten: the user goes back to the base model.
        with session_scope() as session:
            user = session.get(User, user_id)
            if user.active_adapter_id:
                versions.get(session, user.active_adapter_id).status = VersionStatus.INACTIVE
            user.active_adapter_id = None
            _finish_forgetting(session, user_id, forgetting)
        notify_promoted(user_id, 0)
        return "forgot every fact; serving the base model"

    try:
        result = learn_facts(worker_host(), request, progress=_ProgressWriter(claimed or forgetting))
    except Exception as exc:
        _record_failure(user_id, claimed, exc)
        raise
    version_id = _record_version(user_id, request, result, parent_id, kept, forgetting)
    notify_promoted(user_id, version_id)
    return f"{request.adapter_name}: {len(claimed)} new fact(s), recall {result.recall:.2f}"


def _finish_forgetting(session: Session, user_id: int, forgetting: list[int]) -> None:
    for fact in facts_repo.by_ids(session, user_id, forgetting):
        if fact.status == FactStatus.FORGETTING:
            fact.status, fact.stage, fact.progress = FactStatus.FORGOTTEN, None, 1.0


def _record_version(
    user_id: int,
    request: LearnRequest,
    result: LearnResult,
    parent_id: int | None,
    kept: list[Fact],
    forgetting: list[int],
) -> int:
    outcomes = {o.fact_id: o for o in result.facts}
    weights = result.output_dir / "adapter_model.safetensors"
    with session_scope() as session:
        user = session.get(User, user_id)
        learned_ids = []
        for fact in facts_repo.by_ids(session, user_id, outcomes):
            outcome = outcomes[fact.id]
            if fact.status != FactStatus.LEARNING:
                continue  # forgotten while we trained: the next run rebuilds without it
            fact.status, fact.stage, fact.progress, fact.error = FactStatus.LEARNED, None, 1.0, None
            fact.recall = outcome.recall
            fact.self_edit = {
                "family": outcome.self_edit.family,
                "raw": outcome.self_edit.raw,
                "lines": list(outcome.self_edit.lines),
                "quiz": outcome.quiz,
            }
            fact.examples = [{"question": qa.question, "answer": qa.answer} for qa in outcome.examples]
            learned_ids.append(fact.id)
        fact_ids = sorted({*learned_ids, *(f.id for f in kept)})
        version = versions.add(
            session,
            AdapterVersion(
                user_id=user_id,
                version=int(request.output_dir.name[1:]),
                name=request.adapter_name,
                path=str(request.output_dir),
                status=VersionStatus.ACTIVE,
                parent_id=parent_id,
                fact_ids=fact_ids,
                fact_count=len(fact_ids),
                metrics={
                    "recall_new": result.recall if result.facts else None,
                    "recall_rehearsed": result.rehearsal_recall,
                    "locality": result.locality,
                    "losses": [round(x, 4) for x in result.losses],
                    "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
                    "train": request.train.to_dict(),
                    "self_edit_family": request.self_edit_family,
                    "rebuilt": bool(forgetting),
                    "k": request.k,
                    "chosen_candidate": result.chosen,
                    "warm_start": request.init_adapter is not None,
                },
                weights_sha256=result.weights_sha256,
                size_bytes=weights.stat().st_size,
                promoted_at=utcnow(),
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
                        for k in ("recall_new", "recall_rehearsed", "locality", "loss_first_last", "seconds")
                    },
                )
            )
        if user.active_adapter_id:
            previous = versions.get(session, user.active_adapter_id)
            if previous is not None:
                previous.status = VersionStatus.INACTIVE
        user.active_adapter_id = version.id
        for fact in facts_repo.by_ids(session, user_id, learned_ids):
            fact.learned_version_id = version.id
        _finish_forgetting(session, user_id, forgetting)
        return version.id


def _record_failure(user_id: int, claimed: list[int], exc: Exception) -> None:
    """Claimed facts go back to pending to be retried, or fail with the reason."""
    settings = get_settings()
    with session_scope() as session:
        for fact in facts_repo.by_ids(session, user_id, claimed):
            if fact.status != FactStatus.LEARNING:
                continue
            fact.attempts += 1
            fact.error = f"{type(exc).__name__}: {exc}"[:2000]
            fact.stage, fact.progress = None, 0.0
            fact.status = FactStatus.FAILED if fact.attempts >= settings.max_attempts else FactStatus.PENDING
