"""Coalescing and crash recovery of fact claims, against the real PostgreSQL."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.memory import repository
from app.models import Fact, FactStatus, User


def _user(session: Session, email: str) -> User:
    user = User(email=email, api_key_hash=email.ljust(64, "0")[:64], is_admin=False, bridge_enabled=True)
    session.add(user)
    session.flush()
    return user


def test_a_run_claims_only_facts_pending_at_that_moment(session):
    user, other = _user(session, "claims@example.com"), _user(session, "other-claims@example.com")
    first = Fact(user_id=user.id, text="My dog is Rex.", status=FactStatus.PENDING)
    theirs = Fact(user_id=other.id, text="I live in Oslo.", status=FactStatus.PENDING)
    session.add_all([first, theirs])
    session.flush()

    claimed = repository.claim_pending(session, user.id)
    assert claimed == [first.id], "only this user's facts"
    late = Fact(user_id=user.id, text="My bird is Kiwi.", status=FactStatus.PENDING)
    session.add(late)
    session.flush()
    session.expire_all()
    assert session.get(Fact, first.id).status == FactStatus.LEARNING
    assert session.get(Fact, late.id).status == FactStatus.PENDING, "left for the next run"
    assert repository.claim_pending(session, user.id) == [late.id], "the next run takes it, once"
    assert repository.claim_pending(session, user.id) == []


def test_orphaned_learning_facts_return_to_pending(session):
    user = _user(session, "orphans@example.com")
    fact = Fact(user_id=user.id, text="My car is a red Volvo.", status=FactStatus.LEARNING, progress=0.5, crashes=0)
    session.add(fact)
    session.flush()
    assert repository.reset_orphans(session, user.id, max_crashes=2, checkpointed=0) == 1
    session.expire_all()
    assert session.get(Fact, fact.id).status == FactStatus.PENDING
    assert session.get(Fact, fact.id).crashes == 1
    assert user.id in repository.users_with_unfinished(session)
    # Each crash counts: a fact that takes the worker down every time fails, with the reason.
    session.get(Fact, fact.id).status = FactStatus.LEARNING
    session.flush()
    assert repository.reset_orphans(session, user.id, max_crashes=2, checkpointed=0) == 1
    session.expire_all()
    failed = session.get(Fact, fact.id)
    assert failed.status == FactStatus.FAILED and failed.crashes == 2 and failed.attempts == 0
    assert "worker stopped while learning it (2 times)" in failed.error


def test_a_stopped_run_that_checkpointed_more_candidates_is_not_a_crash(session):
    """A run killed (or stopped at its time limit) after finishing candidates the run
    before it had not resumes without using up the crash budget; one that added none
    is a crash, so a fact that never gets further still fails."""
    user = _user(session, "progress@example.com")
    fact = Fact(user_id=user.id, text="My boat is the Heron.", status=FactStatus.LEARNING)
    session.add(fact)
    session.flush()
    for checkpointed in (1, 2, 3):
        session.get(Fact, fact.id).status = FactStatus.LEARNING
        session.flush()
        assert repository.reset_orphans(session, user.id, max_crashes=2, checkpointed=checkpointed) == 1
        session.expire_all()
        resumed = session.get(Fact, fact.id)
        assert resumed.status == FactStatus.PENDING and resumed.crashes == 0 and resumed.checkpointed == checkpointed
        assert resumed.stage == f"resuming after {checkpointed} finished candidate(s)"
    for crashes, status in ((1, FactStatus.PENDING), (2, FactStatus.FAILED)):
        session.get(Fact, fact.id).status = FactStatus.LEARNING
        session.flush()
        repository.reset_orphans(session, user.id, max_crashes=2, checkpointed=3)  # no further
        session.expire_all()
        stopped = session.get(Fact, fact.id)
        assert (stopped.status, stopped.crashes) == (status, crashes)


def test_a_run_sees_which_of_its_facts_were_corrected_or_forgotten_meanwhile(session):
    user = _user(session, "stale@example.com")
    kept = Fact(user_id=user.id, text="My bike is blue.", status=FactStatus.PENDING)
    corrected = Fact(user_id=user.id, text="My tea is sencha.", status=FactStatus.PENDING)
    forgotten = Fact(user_id=user.id, text="My cat is Tom.", status=FactStatus.PENDING)
    session.add_all([kept, corrected, forgotten])
    session.flush()
    claimed = repository.claim_pending(session, user.id)
    assert repository.no_longer_learning(session, user.id, claimed, lock=True) == []
    corrected.status, forgotten.status = FactStatus.SUPERSEDED, FactStatus.FORGETTING
    session.flush()
    assert repository.no_longer_learning(session, user.id, claimed) == sorted([corrected.id, forgotten.id])

    repository.release(session, claimed, stage="queued again")
    session.expire_all()
    assert session.get(Fact, kept.id).status == FactStatus.PENDING, "the unchanged fact waits for the next run"
    assert session.get(Fact, kept.id).stage == "queued again"
    assert session.get(Fact, corrected.id).status == FactStatus.SUPERSEDED, "release touches only learning facts"
    assert session.get(Fact, forgotten.id).status == FactStatus.FORGETTING
