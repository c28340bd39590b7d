"""Consolidation: learn a user's new facts into a new adapter version (runs in the worker).

One run, in order:

1. **lock**: one run per user at a time (a Redis heartbeat lock);
2. **rows → plan**: claim the pending facts and let ``training.memory.plan.plan_run``
   decide which fact group this run trains and how (warm start, fresh, rebuild);
3. **learn**: ``training.memory.learn.learn_facts`` (SEAL best-of-K, checkpointed);
4. **gate**: ``training.memory.gate.decide``: earlier facts' recall, locality, removed
   facts really gone;
5. **record** the version (``app.memory.recording``), refused or not;
6. **promote**: the user's pointer flips to it, in the same transaction;
7. **publish** the promotion, so web processes hot-swap it.

Facts that arrive meanwhile stay pending; the caller queues the next run
(``has_more_work``). A crash leaves at most an orphan directory and facts that the
next run puts back (``facts_repo.reset_orphans``), never a live half-written adapter.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded

from app.adapters import repository as versions
from app.adapters.groups import build_dir, version_groups
from app.adapters.service import notify_promoted
from app.db import session_scope
from app.memory import repository as facts_repo
from app.memory.keys import queued_mark, user_lock_name
from app.memory.recording import (
    Build,
    LockLost,
    Predecessor,
    Stale,
    abandon,
    check_current,
    drop_group,
    finish_forgetting,
    next_version_number,
    record_failure,
    record_version,
)
from app.model_host import worker_host
from app.models import Fact, FactStatus, User
from app.policy import service as policy_service
from app.progress import ThrottledProgress
from app.redis_client import HeartbeatLock, get_redis
from app.settings import get_settings
from training.lora import TrainConfig
from training.memory.gate import GateDecision, GateThresholds, decide, recall_after_refusal
from training.memory.learn import (
    FACT_GRID,
    FACT_KL_WEIGHT,
    QA,
    FactToLearn,
    LearnRequest,
    LearnResult,
    checkpointed_candidates,
    learn_facts,
)
from training.memory.plan import PendingFact, RunPlan, plan_run
from training.seal.candidates import TrainingChoice

log = logging.getLogger(__name__)


class Busy(Exception):
    """Another consolidation holds this user's lock."""


def consolidate_user_facts(user_id: int, options: dict | None = None) -> str:
    """Run one consolidation for ``user_id``; returns a short summary.

    ``options`` are ablations for tests and experiments: ``{"rehearse": False}``
    trains without rehearsing earlier facts, ``{"warm_start": False}`` starts from
    a fresh adapter (the gate still judges the result), ``{"k": n}`` writes ``n``
    self-edit candidates instead of ``SEALCHAT_SELF_EDIT_K`` (``sealchat consolidate --k``).
    """
    lock = HeartbeatLock(user_lock_name(user_id))
    if not lock.acquire():
        raise Busy(user_id)
    get_redis().delete(queued_mark(user_id))
    try:
        run = _plan(user_id, options or {})
        if isinstance(run, str):
            return run
        return _learn_gate_record(run, lock.lost)
    finally:
        lock.release()


def has_more_work(user_id: int) -> bool:
    """Facts taught during a run (or put back after a failure or a refusal) are
    pending, or a forget is still unverified: another run is due."""
    with session_scope() as session:
        if facts_repo.with_status(session, user_id, (FactStatus.PENDING,)):
            return True
        forgetting = facts_repo.with_status(session, user_id, (FactStatus.FORGETTING,))
        return any(f.attempts < get_settings().max_attempts for f in forgetting)


@dataclass(frozen=True)
class _Run:
    """One planned run: what it trains, and what its version is compared with and built from."""

    user_id: int
    plan: RunPlan
    request: LearnRequest
    predecessor: Predecessor
    build: Build
    kept: list[int]  # the group's learnt facts that stay
    forgetting: list[int]  # removed facts that are forgotten (not replaced by a correction)
    checkpoint: Path


def _plan(user_id: int, options: dict) -> _Run | str:
    """Rows → plan: claim the pending facts, plan the run, and describe it to the trainer."""
    settings = get_settings()
    with session_scope() as session:
        user = session.get(User, user_id)
        if user is None:
            return f"user {user_id} no longer exists"
        user_dir = settings.adapters_dir / f"user_{user_id}"
        # A stopped run's checkpoint is the only one left (a run deletes the others).
        checkpointed = max((checkpointed_candidates(d) for d in user_dir.glob(".checkpoint-*")), default=0)
        facts_repo.reset_orphans(session, user_id, settings.max_attempts, checkpointed)
        claimed = facts_repo.by_ids(session, user_id, facts_repo.claim_pending(session, user_id))
        active = versions.get(session, user.active_adapter_id) if user.active_adapter_id else None
        live = version_groups(active)
        in_weights = {
            f.id: f for f in facts_repo.by_ids(session, user_id, [i for g in live.values() for i in g.fact_ids])
        }
        # Facts that must leave the weights: forgotten ones, and ones a correction replaced.
        leaving = [f.id for f in in_weights.values() if f.status in (FactStatus.FORGETTING, FactStatus.SUPERSEDED)]
        # A fact forgotten before any live version held it (while it was being
        # learnt, or after a rollback) is in no adapter that serves: nothing to remove.
        forgotten = facts_repo.with_status(session, user_id, (FactStatus.FORGETTING,))
        finish_forgetting(session, user_id, [f.id for f in forgotten if f.id not in in_weights], active)
        replaced = {f.superseded_by_id: f.id for f in in_weights.values() if f.superseded_by_id}
        plan = plan_run(
            {k: [i for i in g.fact_ids if i in in_weights] for k, g in live.items()},
            [PendingFact(f.id, f.attempts, replaced.get(f.id)) for f in claimed],
            leaving,
            settings.fact_group_size,
            warm_start=options.get("warm_start", True),
        )
        if plan is None:
            return "nothing to learn"
        # Facts placed in other groups wait for their group's run.
        facts_repo.release(session, list(plan.waiting))
        new = [f for f in claimed if f.id in plan.new]
        kept = [in_weights[i] for i in plan.kept if in_weights[i].status == FactStatus.LEARNED]
        removed = [in_weights[i] for i in plan.removed]
        corrections = {f.id: f.text for f in facts_repo.by_ids(session, user_id, [f.superseded_by_id for f in removed])}
        number = next_version_number(session, user_id, user_dir)
        final = user_dir / f"v{number}"
        live_recall = active.fact_recall if active else {}
        planned_recall = live_recall
        if plan.retry and active is not None:
            # The facts the refused versions pushed out are rehearsed and quizzed first.
            retried = {f.id for f in new if f.attempts > 0}
            refused = [v for v in versions.refused_children(session, active.id) if retried & set(v.fact_ids or [])]
            planned_recall = recall_after_refusal(live_recall, (v.kept_recall for v in refused))
        checkpoint = user_dir / f".checkpoint-v{number}-g{plan.group}"
        group = live.get(plan.group)
        request = LearnRequest(
            adapter_name=f"u{user_id}-v{number}",
            new_facts=[_as_input(f) for f in new],
            rehearsal=[_as_input(f, planned_recall) for f in kept],
            removed=[_as_input(f, corrections=corrections) for f in removed],
            rehearse=options.get("rehearse", True),
            output_dir=build_dir(final) / f"g{plan.group}",
            replay_cache=settings.replay_cache,
            init_adapter=group.path if plan.warm and group is not None else None,
            train=TrainConfig(
                learning_rate=settings.learning_rate,
                max_steps=settings.train_steps,
                seed=number,
                kl_weight=FACT_KL_WEIGHT,
            ),
            policy=policy_service.active_ref(session),
            k=int(options.get("k") or settings.self_edit_k),
            # Candidate 0 uses the configured learning rate; the others explore the grid.
            grid=(TrainingChoice(settings.learning_rate, 8, True), *FACT_GRID[1:]),
            checkpoint_dir=checkpoint,
        )
        predecessor = Predecessor(
            active.id if active else None, live_recall, {f.id: f.recall for f in kept if f.recall is not None}
        )
        texts = {f.id: f.text for f in [*in_weights.values(), *new]}
        build = Build(final, plan.group, {k: g for k, g in live.items() if k != plan.group}, texts)
        forgetting = [f.id for f in removed if f.status == FactStatus.FORGETTING]
    user_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(build_dir(final), ignore_errors=True)  # a crashed run's leftovers
    for stale in user_dir.glob(".checkpoint-*"):  # of runs planned otherwise; this one's may resume
        if stale != checkpoint:
            shutil.rmtree(stale, ignore_errors=True)
    log.info(
        "user %s: group %d: learning %d fact(s), keeping %d, removing %d -> %s (%s%s)",
        *(user_id, plan.group, len(plan.new), len(kept), len(removed), request.adapter_name, plan.mode),
        " (retry)" if plan.retry else "",
    )
    if not request.new_facts and not request.rehearsal:
        # Every fact of the group is being forgotten: the version drops the group,
        # and with no group left the user goes back to the base model.
        return drop_group(user_id, active, plan.group, build.others, final, forgetting, texts)
    return _Run(user_id, plan, request, predecessor, build, [f.id for f in kept], forgetting, checkpoint)


def _learn_gate_record(run: _Run, lock_lost: threading.Event) -> str:
    """Learn → gate → record and promote → publish."""
    user_id, learning, request = run.user_id, list(run.plan.new), run.request
    try:
        progress = _fact_progress(user_id, learning or run.forgetting, learning, lock_lost)
        result = learn_facts(worker_host(), request, progress=progress)
    except Stale as exc:
        return abandon(user_id, learning, run.build.final, exc)
    except SoftTimeLimitExceeded:
        # Past the time limit: the facts stay ``learning``, as if the worker had
        # died, and the next run resumes from the checkpoint. It counts as a crash
        # only if this run checkpointed nothing new.
        log.warning("user %s: %s stopped at the time limit; resuming in a new run", user_id, request.adapter_name)
        shutil.rmtree(build_dir(run.build.final), ignore_errors=True)
        with session_scope() as session:
            max_attempts, done = get_settings().max_attempts, checkpointed_candidates(run.checkpoint)
            facts_repo.reset_orphans(session, user_id, max_attempts, done)
        return "stopped at the time limit; resuming"
    except Exception as exc:
        record_failure(user_id, learning, exc)
        raise
    decision = _gate(run, result)
    try:
        version_id = record_version(
            run.user_id, request, result, run.predecessor, run.kept, run.forgetting, decision, run.build
        )
    except Stale as exc:
        return abandon(user_id, learning, run.build.final, exc)
    if not decision.accepted:
        log.warning("user %s: %s refused by the gate: %s", user_id, request.adapter_name, decision.reason)
        return f"{request.adapter_name}: refused ({decision.reason})"
    notify_promoted(user_id, version_id)
    return f"{request.adapter_name}: {len(learning)} new fact(s) in group {run.plan.group}, recall {result.recall:.2f}"


def _gate(run: _Run, result: LearnResult) -> GateDecision:
    return decide(
        run.predecessor.recall_of(result.kept_recall),
        result.kept_recall,
        result.locality,
        result.removed_recall,
        GateThresholds(),
        result.removed_base_recall,
        {i: next((q["answer"] for q in quiz if q["recalled"]), "") for i, quiz in result.removed_quiz.items()},
    )


def _as_input(
    fact: Fact, recall: dict[int, float] | None = None, corrections: dict[int, str] | None = None
) -> FactToLearn:
    """``recall``: the live version's latest measured recall per fact (rehearsal puts
    the weakest first); a fact it never measured falls back to its recall when learnt.
    ``corrections``: the text of each fact that superseded another, by id."""
    examples = tuple(QA(e["question"], e["answer"]) for e in (fact.examples or []))
    replaced_by = (corrections or {}).get(fact.superseded_by_id) if fact.superseded_by_id else None
    return FactToLearn(fact.id, fact.text, examples, (recall or {}).get(fact.id, fact.recall), replaced_by)


def _fact_progress(
    user_id: int, fact_ids: list[int], learning: list[int], lock_lost: threading.Event
) -> ThrottledProgress:
    """Progress shown on the facts being learnt or forgotten (the memory page's bars);
    each report also checks that the facts being learnt still are (else `Stale`) and
    that this run still holds the user's lock (else `LockLost`)."""

    def write(stage: str, fraction: float) -> None:
        if lock_lost.is_set():
            raise LockLost(user_id)
        with session_scope() as session:
            facts_repo.set_progress(session, fact_ids, stage, fraction)
            check_current(session, user_id, learning)

    return ThrottledProgress(write, interval=1.0)
