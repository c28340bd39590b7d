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
    known = Fact(user_id=sharer.id, text="My tortoise is called Zephyrine.", status=FactStatus.LEARNED)
    forgotten = Fact(user_id=sharer.id, text="My locker code is 4411 at Quorndale gym.", status=FactStatus.FORGOTTEN)
    corrected = Fact(user_id=sharer.id, text="I live in Vintridge.", status=FactStatus.SUPERSEDED)
    theirs = Fact(user_id=private.id, text="My ferret is called Pumbleworth.", status=FactStatus.LEARNED)
    session.add_all([known, forgotten, corrected, theirs])
    session.flush()
    _consolidation(session, sharer, [known, forgotten, corrected], [[True, False], [True, True]])
    _consolidation(session, private, [theirs], [[True, True]])

    ours = {known.text, forgotten.text, corrected.text, theirs.text}  # the stack's other tests share the DB

    def records_here():
        return [r for r in service.online_records(session) if r.fact in ours]

    records = records_here()

    assert {r.fact for r in records} == {"My tortoise is called Zephyrine."}
    assert sorted((r.index, r.recall) for r in records) == [(0, 0.5), (1, 1.0)]
    assert all(r.policy == "base" and r.lines for r in records)
    assert len({r.input_id for r in records}) == 1, "the K candidates of one consolidation compete together"

    private.share_self_edits = True
    session.flush()
    assert {r.fact for r in records_here()} == {"My tortoise is called Zephyrine.", "My ferret is called Pumbleworth."}
