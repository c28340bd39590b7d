"""Run one ReST-EM round in the worker (:func:`training.policy.rest_em.run_round`) and record it.

Offline (``squad``): SQuAD v1.1 *train* passages, held out: a fixed sample of the
train split (the benchmark's dev passages are never used). Online: the recorded
candidates of users who allow it; held out: the repository's personal-facts set
with gold questions. The round's files live under ``<data>/policy/rounds/r<N>``,
so a round whose worker died resumes where it stopped (workers re-enqueue
unfinished rounds at start). The new version is recorded either way and becomes
the active policy only if it improved the held-out score.
"""

from __future__ import annotations

import json
import logging

from app.db import session_scope
from app.model_host import worker_host
from app.models import PolicyRound, PolicyVersion, RoundStatus, VersionStatus, utcnow
from app.policy import repository, service
from app.progress import ThrottledProgress
from app.redis_client import HeartbeatLock
from app.settings import get_settings
from training.memory.fact_sets import DEFAULT_FACTS, load_facts
from training.memory.learn import SELF_EDIT_FAMILY
from training.policy.improve import as_input, split_passages
from training.policy.rest_em import RoundConfig, StudyInput, run_round
from training.policy.rest_em_work import fact_work, passage_work
from training.policy.squad import ensure_squad, load_passages
from training.replay import load_or_build
from training.seal.policy import read_manifest

log = logging.getLogger(__name__)


class RoundBusy(Exception):
    """Another round holds the policy lock."""


def _round_progress(round_id: int) -> ThrottledProgress:
    """Progress shown in the admin page's rounds table."""

    def write(stage: str, fraction: float) -> None:
        with session_scope() as session:
            row = repository.get_round(session, round_id)
            row.stage, row.progress = stage[:64], fraction

    return ThrottledProgress(write, interval=2.0)


def run_policy_round(round_id: int) -> str:
    lock = HeartbeatLock("sealchat:policy-round")
    if not lock.acquire():
        raise RoundBusy(round_id)
    try:
        return _run_locked(round_id)
    except Exception as exc:
        with session_scope() as session:
            row = repository.get_round(session, round_id)
            if row is not None:
                row.status, row.error, row.finished_at = RoundStatus.FAILED, f"{type(exc).__name__}: {exc}", utcnow()
        raise
    finally:
        lock.release()


def _run_locked(round_id: int) -> str:
    settings = get_settings()
    with session_scope() as session:
        row = repository.get_round(session, round_id)
        if row is None:
            return f"policy round {round_id} no longer exists"
        if row.status in (RoundStatus.DONE, RoundStatus.FAILED):
            return f"policy round {row.number} is already {row.status}"
        row.status, row.stage, row.attempts = RoundStatus.RUNNING, "starting", row.attempts + 1
        parent_row = repository.active_version(session)
        parent, parent_id = service.ref_for(parent_row), parent_row.id if parent_row else None
        number, source = row.number, row.source
        records = service.online_records(session) if source == "online" else []

    round_dir = settings.policy_dir / "rounds" / f"r{number}"
    saved = json.loads((round_dir / "config.json").read_text()) if (round_dir / "config.json").is_file() else None
    if source == "online":
        if saved:  # a resumed round keeps the inputs it started with
            records = [r for r in records if r.input_id in set(saved["train_inputs"])]
        train = [StudyInput(i, r.fact, kind="fact") for i, r in {r.input_id: r for r in records}.items()]
        held_out = load_facts(DEFAULT_FACTS)[: settings.policy_round.eval_inputs]
        evaluate = [StudyInput(f"heldout-fact{f.index}", f.text, f.questions, "fact") for f in held_out]
        families = (SELF_EDIT_FAMILY,)  # a policy is judged by what the product writes
    else:
        passages = load_passages(ensure_squad(settings.data_path / "squad", "train"))
        size = settings.policy_round
        train_p, eval_p = split_passages(passages, size.passages, size.eval_inputs, 0, number)
        train, evaluate = [as_input(p) for p in train_p], [as_input(p) for p in eval_p]
        families = ("implications",)
    size = settings.policy_round
    config = RoundConfig(k=size.k, families=families, inner_max_steps=size.inner_steps)

    host = worker_host()
    with host.using(None):
        replay = load_or_build(host.peft, host.tokenizer, settings.replay_cache)["replay"]
    work = (
        fact_work(host, parent, config, replay, records)
        if source == "online"
        else passage_work(host, parent, config, replay)
    )
    log.info(
        "policy round %d (%s): %d input(s), %d held out, from %s",
        number,
        source,
        len(train),
        len(evaluate),
        parent.name if parent else "the base model",
    )
    outcome = run_round(
        round_dir,
        settings.policy_dir / f"v{number}",
        parent,
        train,
        evaluate,
        config,
        work,
        source=source,
        progress=_round_progress(round_id),
    )
    with session_scope() as session:
        row = repository.get_round(session, round_id)
        version = None
        if outcome.version is not None:
            version = PolicyVersion(
                version=number,
                name=outcome.version.name,
                path=str(outcome.version.path),
                status=VersionStatus.INACTIVE if outcome.improved else VersionStatus.REJECTED,
                parent_id=parent_id,
                source=source,
                metrics=outcome.metrics,
                weights_sha256=read_manifest(outcome.version.path)["weights_sha256"],
            )
            repository.add(session, version)
            if outcome.improved:
                service.make_active(session, version)
        _finish(row, outcome.metrics, version)
    verdict = "promoted" if outcome.improved else f"not promoted: {outcome.metrics.get('reason')}"
    return f"policy round {number}: {verdict}"


def _finish(row: PolicyRound, metrics: dict, version: PolicyVersion | None) -> None:
    row.status, row.stage, row.progress, row.error = RoundStatus.DONE, None, 1.0, None
    row.metrics, row.finished_at = metrics, utcnow()
    row.version_id = version.id if version is not None else None
