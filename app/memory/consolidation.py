"""Consolidation: learn a user's new facts into a new adapter version (runs in the worker).

One run per user at a time (a Redis lock). A run claims the user's pending facts,
builds a version with ``training.learn.learn_facts`` (warm-started from the active
version and rehearsing a sample of its facts; rebuilt from scratch when a fact
must leave the weights), puts it through the gate (``training.gate``: earlier
facts' recall, locality, removed facts really gone) and promotes it, or records
it as ``rejected`` with the reason while the previous version stays live. Facts
that arrive meanwhile stay pending and are picked up by the next run, which this
run enqueues when it finishes.

Crash safety: the version directory appears atomically and its DB row is written
after it, so a crash leaves at most an orphan directory, never a live half-written
adapter; claimed facts go back to pending (or fail after ``max_attempts``).
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.orm import Session

from app.adapters import repository as versions
from app.adapters.groups import Group, assemble, build_dir, combined_sha256, groups_json, size_bytes, version_groups
from app.adapters.service import notify_promoted
from app.db import session_scope
from app.memory import repository as facts_repo
from app.memory.erasure import erase_retired
from app.memory.keys import queued_mark, user_lock_name
from app.models import AdapterVersion, Fact, FactStatus, SelfEditCandidate, User, VersionStatus, utcnow
from app.policy import service as policy_service
from app.progress import ThrottledProgress
from app.redis_client import HeartbeatLock, get_redis
from app.settings import get_settings
from training.adapters import AdapterHost
from training.candidates import TrainingChoice
from training.gate import GateDecision, GateThresholds, decide, recall_after_refusal
from training.groups import GROUP_RETRY_ATTEMPTS, next_group
from training.learn import (
    FACT_GRID,
    FACT_KL_WEIGHT,
    QA,
    FactToLearn,
    LearnRequest,
    LearnResult,
    checkpointed_candidates,
    learn_facts,
)
from training.lora import TrainConfig
from training.model import load_model, prepare_base_model
from training.replay import LOCALITY_PROMPTS
from training.scope import Scope, TopicEmbedder, served_locality

log = logging.getLogger(__name__)


class Busy(Exception):
    """Another consolidation holds this user's lock."""


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


def _check_current(session: Session, user_id: int, learning: list[int], lock: bool = False) -> None:
    gone = facts_repo.no_longer_learning(session, user_id, learning, lock=lock)
    if gone:
        raise Stale(gone)


@lru_cache
def worker_host() -> AdapterHost:
    """The worker's base model, loaded once per process."""
    settings = get_settings()
    return AdapterHost(load_model(prepare_base_model(settings.base_model, settings.models_dir)))


@lru_cache
def worker_topics() -> TopicEmbedder:
    """Scope routing's topic check over the worker's base model (for served locality)."""
    return TopicEmbedder.of_host(worker_host())


def _as_input(
    fact: Fact, recall: dict[int, float] | None = None, corrections: dict[int, str] | None = None
) -> FactToLearn:
    """``recall``: the live version's latest measured recall per fact (rehearsal puts
    the weakest first); a fact it never measured falls back to its recall when learnt.
    ``corrections``: the text of each fact that superseded another, by id."""
    examples = tuple(QA(e["question"], e["answer"]) for e in (fact.examples or []))
    replaced_by = (corrections or {}).get(fact.superseded_by_id) if fact.superseded_by_id else None
    return FactToLearn(fact.id, fact.text, examples, (recall or {}).get(fact.id, fact.recall), replaced_by)


def _kept_recall(version: AdapterVersion) -> dict[int, float]:
    """The earlier facts' recall a version's gate measured (JSON keys are strings)."""
    return {int(k): v for k, v in ((version.metrics or {}).get("kept_recall") or {}).items()}


def _next_version_number(session: Session, user_id: int, user_dir: Path) -> int:
    # Orphan directories from a crash between rename and commit also count, so a
    # version name is never reused.
    on_disk = [int(p.name[1:]) for p in user_dir.glob("v*") if p.name[1:].isdigit()]
    return max([versions.max_version(session, user_id), *on_disk]) + 1


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
            _check_current(session, user_id, learning)

    return ThrottledProgress(write, interval=1.0)


def consolidate_user_facts(user_id: int, options: dict | None = None) -> str:
    """Run one consolidation for ``user_id``; returns a short summary.

    ``options`` are ablations for tests and experiments: ``{"rehearse": False}``
    trains without rehearsing earlier facts, ``{"warm_start": False}`` starts from
    a fresh adapter. The gate still judges the result. ``{"k": n}`` writes ``n``
    self-edit candidates instead of ``SEALCHAT_SELF_EDIT_K`` (``sealchat consolidate --k``).
    """
    settings = get_settings()
    lock = HeartbeatLock(user_lock_name(user_id))
    if not lock.acquire():
        raise Busy(user_id)
    get_redis().delete(queued_mark(user_id))
    try:
        return _consolidate_locked(user_id, options or {}, lock.lost)
    finally:
        lock.release()
        # Facts taught while we ran (or put back after a failure or a refusal) are
        # still pending, or a forget is still unverified: run again.
        with session_scope() as session:
            more = facts_repo.with_status(session, user_id, (FactStatus.PENDING,)) or [
                f
                for f in facts_repo.with_status(session, user_id, (FactStatus.FORGETTING,))
                if f.attempts < settings.max_attempts
            ]
        if more:
            from app.memory.tasks import enqueue_consolidation

            enqueue_consolidation(user_id)


def _consolidate_locked(user_id: int, options: dict, lock_lost: threading.Event) -> str:
    settings = get_settings()
    with session_scope() as session:
        user = session.get(User, user_id)
        if user is None:
            return f"user {user_id} no longer exists"
        user_dir = settings.adapters_dir / f"user_{user_id}"
        # A stopped run's checkpoint is the only one left (a run deletes the others).
        checkpointed = max((checkpointed_candidates(d) for d in user_dir.glob(".checkpoint-*")), default=0)
        facts_repo.reset_orphans(session, user_id, settings.max_attempts, checkpointed)
        claimed = facts_repo.claim_pending(session, user_id)
        active = versions.get(session, user.active_adapter_id) if user.active_adapter_id else None
        live = version_groups(active)
        group_of = {i: k for k, g in live.items() for i in g.fact_ids}
        in_weights = facts_repo.by_ids(session, user_id, group_of)
        # Facts that must leave the weights: forgotten ones, and ones a correction replaced.
        leaving = [f for f in in_weights if f.status in (FactStatus.FORGETTING, FactStatus.SUPERSEDED)]
        # A fact forgotten before any live version held it (while it was being
        # learnt, or after a rollback) is in no adapter that serves: nothing to remove.
        forgotten = facts_repo.with_status(session, user_id, (FactStatus.FORGETTING,))
        _finish_forgetting(session, user_id, [f.id for f in forgotten if f not in in_weights], active)
        new_all = facts_repo.by_ids(session, user_id, claimed)
        plan = next_group(
            {k: [i for i in g.fact_ids if i not in {f.id for f in leaving}] for k, g in live.items()},
            [f.id for f in new_all],
            {f.id: group_of[f.id] for f in leaving},
            settings.fact_group_size or len(group_of) + len(claimed) + 1,
            # A correction joins the group of the fact it replaces: one run removes
            # the old value and teaches the new one, and no other group still holds it.
            home={f.superseded_by_id: group_of[f.id] for f in leaving if f.superseded_by_id in set(claimed)},
            fresh=[f.id for f in new_all if f.attempts >= GROUP_RETRY_ATTEMPTS],
        )
        if plan is None:
            return "nothing to learn"
        target, placed = plan
        # Facts placed in other groups wait for their group's run (enqueued when this one ends).
        facts_repo.release(session, [i for i in claimed if i not in placed])
        claimed = placed
        group = live.get(target)
        new = [f for f in new_all if f.id in placed]
        kept = [f for f in in_weights if f.status == FactStatus.LEARNED and group_of[f.id] == target]
        removed = [f for f in leaving if group_of[f.id] == target]
        forgetting = [f.id for f in removed if f.status == FactStatus.FORGETTING]
        replacing = [f.superseded_by_id for f in removed if f.superseded_by_id]
        corrections = {f.id: f.text for f in facts_repo.by_ids(session, user_id, replacing)}
        others = {k: g for k, g in live.items() if k != target}
        number = _next_version_number(session, user_id, user_dir)
        # Removing a fact (forget, correction) rebuilds the group from scratch on the
        # facts it keeps (at most a group's worth), so nothing of the removed fact was
        # ever trained into the new version; the gate checks by quiz that it is gone
        # and the kept facts are not. A retry after the gate refused a version (a new
        # fact pushed an earlier one out) is warm-started and bounded like any run;
        # the facts the refused versions lost are rehearsed and quizzed first.
        retry = any(f.attempts > 0 for f in new)
        rebuild = bool(removed)
        warm = group is not None and not rebuild and options.get("warm_start", True)
        live_metrics = (active.metrics or {}) if active else {}
        live_recall = {int(k): v for k, v in (live_metrics.get("fact_recall") or {}).items()}
        planned_recall = live_recall
        if retry and active is not None:
            retried = {f.id for f in new if f.attempts > 0}
            refused = [v for v in versions.refused_children(session, active.id) if retried & set(v.fact_ids or [])]
            planned_recall = recall_after_refusal(live_recall, (_kept_recall(v) for v in refused))
        final = user_dir / f"v{number}"
        checkpoint = user_dir / f".checkpoint-v{number}-g{target}"
        request = LearnRequest(
            adapter_name=f"u{user_id}-v{number}",
            new_facts=[_as_input(f) for f in new],
            rehearsal=[_as_input(f, planned_recall) for f in kept],
            removed=[_as_input(f, corrections=corrections) for f in removed],
            rehearse=options.get("rehearse", True),
            output_dir=build_dir(final) / f"g{target}",
            replay_cache=settings.replay_cache,
            init_adapter=group.path if warm and group is not None else None,
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
        predecessor = _Predecessor(
            active.id if active else None,
            live_recall,
            {f.id: f.recall for f in kept if f.recall is not None},
        )
        texts = {f.id: f.text for f in facts_repo.by_ids(session, user_id, [*group_of, *claimed])}
    user_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(build_dir(final), ignore_errors=True)  # a crashed run's leftovers
    for stale in user_dir.glob(".checkpoint-*"):  # of runs planned otherwise; this one's may resume
        if stale != checkpoint:
            shutil.rmtree(stale, ignore_errors=True)
    log.info(
        "user %s: group %d: learning %d fact(s), keeping %d, removing %d -> %s (%s)",
        user_id,
        target,
        len(claimed),
        len(kept),
        len(removed),
        request.adapter_name,
        ("rebuild" if rebuild else "warm start" if warm else "fresh") + (" (retry)" if retry else ""),
    )

    if not request.new_facts and not request.rehearsal:
        # Every fact of the group is being forgotten: the version drops the group,
        # and with no group left the user goes back to the base model.
        return _drop_group(user_id, active, target, others, final, forgetting, texts)

    try:
        progress = _fact_progress(user_id, claimed or forgetting, claimed, lock_lost)
        result = learn_facts(worker_host(), request, progress=progress)
    except Stale as exc:
        return _abandon(user_id, claimed, final, exc)
    except SoftTimeLimitExceeded:
        # Past the time limit: the facts stay ``learning``, as if the worker had
        # died, and the next run (enqueued on the way out) resumes from the
        # checkpoint. It counts as a crash only if this run checkpointed nothing new.
        log.warning("user %s: %s stopped at the time limit; resuming in a new run", user_id, request.adapter_name)
        shutil.rmtree(build_dir(final), ignore_errors=True)
        with session_scope() as session:
            facts_repo.reset_orphans(session, user_id, settings.max_attempts, checkpointed_candidates(checkpoint))
        return "stopped at the time limit; resuming"
    except Exception as exc:
        _record_failure(user_id, claimed, exc)
        raise
    decision = decide(
        predecessor.recall_of(result.kept_recall),
        result.kept_recall,
        result.locality,
        result.removed_recall,
        GateThresholds(),
        result.removed_base_recall,
        {i: next((q["answer"] for q in quiz if q["recalled"]), "") for i, quiz in result.removed_quiz.items()},
    )
    built = _Build(final, target, others, texts)
    try:
        version_id = _record_version(user_id, request, result, predecessor, kept, forgetting, decision, rebuild, built)
    except Stale as exc:
        return _abandon(user_id, claimed, final, exc)
    if not decision.accepted:
        log.warning("user %s: %s refused by the gate: %s", user_id, request.adapter_name, decision.reason)
        return f"{request.adapter_name}: refused ({decision.reason})"
    notify_promoted(user_id, version_id)
    return f"{request.adapter_name}: {len(claimed)} new fact(s) in group {target}, recall {result.recall:.2f}"


def _abandon(user_id: int, claimed: list[int], final: Path, exc: Stale) -> str:
    """Stop a run whose facts changed under it: nothing of it is kept, the facts
    still being learnt go back to pending (no attempt counted) for the next run,
    which this run's caller enqueues."""
    shutil.rmtree(build_dir(final), ignore_errors=True)
    with session_scope() as session:
        facts_repo.release(session, claimed, stage="queued again: a fact changed while it was learnt")
    log.info("user %s: %s abandoned: %s", user_id, final.name, exc)
    return f"{final.name}: abandoned ({exc})"


@dataclass(frozen=True)
class _Build:
    """Where a version is assembled: its directory, the group it trained, the
    groups it links unchanged from its predecessor, and fact texts (served locality)."""

    final: Path
    target: int
    others: dict[int, Group]
    texts: dict[int, str]

    def served_locality(self, groups: dict[int, Group]) -> float:
        """Locality as served: with scope routing, a general prompt reaches an adapter
        only when it is on a fact's topic, and counts as changed if any group changed it."""
        changed = list(dict.fromkeys(p for _, g in sorted(groups.items()) for p in g.locality_changed))
        facts = [self.texts[i] for g in groups.values() for i in g.fact_ids if i in self.texts]
        return served_locality(tuple(changed), len(LOCALITY_PROMPTS), Scope(facts, worker_topics().nearer_to_facts))


def _drop_group(
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
            _finish_forgetting(session, user_id, forgetting, None)
        notify_promoted(user_id, 0)
        return "forgot every fact; serving the base model"
    build = _Build(final, target, others, texts)
    with session_scope() as session:
        user = session.get(User, user_id)
        groups = assemble(final, others)
        fact_ids = sorted(i for g in groups.values() for i in g.fact_ids)
        live_recall = (active.metrics or {}).get("fact_recall") or {} if active else {}
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
                    "fact_recall": {k: v for k, v in live_recall.items() if int(k) in fact_ids},
                    "served_locality": build.served_locality(groups),
                },
                weights_sha256=combined_sha256(groups),
                size_bytes=size_bytes(groups),
                promoted_at=utcnow(),
            ),
        )
        _promote_locked(session, user, version)
        _finish_forgetting(session, user_id, forgetting, version)
        version_id = version.id
    notify_promoted(user_id, version_id)
    return f"{final.name}: dropped group {target} (its {len(forgetting)} fact(s) forgotten)"


def _promote_locked(session: Session, user: User, version: AdapterVersion) -> None:
    if user.active_adapter_id:
        previous = versions.get(session, user.active_adapter_id)
        if previous is not None:
            previous.status = VersionStatus.INACTIVE
    user.active_adapter_id = version.id


@dataclass(frozen=True)
class _Predecessor:
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


def _finish_forgetting(session: Session, user_id: int, forgetting: list[int], live: AdapterVersion | None) -> None:
    """The facts are out of the ``live`` weights: forgotten, and erased with every
    other forgotten or corrected fact that ``live`` does not hold."""
    for fact in facts_repo.by_ids(session, user_id, forgetting):
        if fact.status == FactStatus.FORGETTING:
            fact.status, fact.stage, fact.progress, fact.error = FactStatus.FORGOTTEN, None, 1.0, None
    session.flush()
    erase_retired(session, user_id, live)


def _record_version(
    user_id: int,
    request: LearnRequest,
    result: LearnResult,
    predecessor: _Predecessor,
    kept: list[Fact],
    forgetting: list[int],
    decision: GateDecision,
    rebuild: bool,
    built: _Build,
) -> int:
    """Assemble the version's directory and write its row (after the directory, so
    a crash leaves at most an orphan directory); promote it if the gate accepted
    it, else record the refusal (its directory stays, for the admin to inspect)."""
    outcomes = {o.fact_id: o for o in result.facts}
    with session_scope() as session:
        # Locked until this version is written: a forget or correction arriving now
        # waits, then finds the fact learnt (in the weights) and removes it properly.
        _check_current(session, user_id, list(outcomes), lock=True)
        user = session.get(User, user_id)
        learned_ids = list(outcomes)
        trained = Group(
            built.target,
            tuple(sorted({*learned_ids, *(f.id for f in kept)})),
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
                    "locality_kl": result.best.locality_kl,
                    "locality_changed": list(result.locality_changed),
                    "served_locality": served,
                    "gate": decision.to_dict(),
                    "losses": [round(x, 4) for x in result.losses],
                    "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
                    "train": request.train.to_dict(),
                    "self_edit_family": request.self_edit_family,
                    "rebuilt": rebuild,
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
            _refuse(session, user_id, learned_ids, forgetting, f"version {version.version} refused: {decision.reason}")
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
        _promote_locked(session, user, version)
        _finish_forgetting(session, user_id, forgetting, version)
        return version.id


def _refuse(session: Session, user_id: int, learning: list[int], forgetting: list[int], reason: str) -> None:
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


def _record_failure(user_id: int, claimed: list[int], exc: Exception) -> None:
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
