"""What an online policy round may learn from, against the real PostgreSQL.

Only users who opted in, only facts still known (never a forgotten or corrected
one), and each recorded candidate with its own reward.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.models import AdapterVersion, Fact, FactStatus, SelfEditCandidate, User
from app.policy import service


def _user(session: Session, email: str, share: bool) -> User:
    user = User(email=email, api_key_hash=email.ljust(64, "0")[:64], share_self_edits=share)
    session.add(user)
    session.flush()
    return user


def _consolidation(session: Session, user: User, facts: list[Fact], recalls: list[list[bool]]) -> AdapterVersion:
    version = AdapterVersion(
        user_id=user.id, version=1, name=f"u{user.id}-v1", path="/nowhere", fact_ids=[f.id for f in facts],
        weights_sha256="0" * 64,
    )  # fmt: skip
    session.add(version)
    session.flush()
    for index, flags in enumerate(recalls):
        session.add(
            SelfEditCandidate(
                version_id=version.id,
                user_id=user.id,
                candidate_index=index,
                chosen=index == 0,
                reward=sum(flags) / len(flags),
                settings={"policy": "base"},
                metrics={},
                self_edits=[
                    {
                        "fact_id": fact.id,
                        "family": "rewrite",
                        "raw": f"notes {index}",
                        "lines": [f"{fact.text} (note {index})"],
                        "quiz": [{"question": "q", "answer": "a", "recalled": r} for r in flags],
                    }
                    for fact in facts
                ],
            )
        )
    session.flush()
    return version


def test_online_rounds_learn_only_from_consenting_users_and_known_facts(session):
    sharer = _user(session, "sharer@example.com", share=True)
    private = _user(session, "private@example.com", share=False)
    known = Fact(user_id=sharer.id, text="My cat is called Biscotti.", status=FactStatus.LEARNED)
    forgotten = Fact(user_id=sharer.id, text="My locker code is 4411.", status=FactStatus.FORGOTTEN)
    corrected = Fact(user_id=sharer.id, text="I live in Boston.", status=FactStatus.SUPERSEDED)
    theirs = Fact(user_id=private.id, text="My dog is called Rex.", status=FactStatus.LEARNED)
    session.add_all([known, forgotten, corrected, theirs])
    session.flush()
    _consolidation(session, sharer, [known, forgotten, corrected], [[True, False], [True, True]])
    _consolidation(session, private, [theirs], [[True, True]])

    records = service.online_records(session)

    assert {r.fact for r in records} == {"My cat is called Biscotti."}
    assert sorted((r.index, r.recall) for r in records) == [(0, 0.5), (1, 1.0)]
    assert all(r.policy == "base" and r.lines for r in records)
    assert len({r.input_id for r in records}) == 1, "the K candidates of one consolidation compete together"

    private.share_self_edits = True
    session.flush()
    assert {r.fact for r in service.online_records(session)} == {"My cat is called Biscotti.", "My dog is called Rex."}
