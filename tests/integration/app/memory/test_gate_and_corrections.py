"""The gate, corrections and verified forgetting, with the real worker, model and PostgreSQL.

- A version built to forget (fresh adapter, no rehearsal of the earlier fact) is
  refused: status ``rejected`` with its reason, the previous version stays live,
  and the fact is retried and then learnt by a normal version that keeps the
  earlier fact.
- A correction ("I moved from Boston to Denver") supersedes the earlier fact and
  the next version answers with the new value.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest
from openai import OpenAI
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.models import Fact, FactStatus, SelfEditCandidate
from tests.conftest import TEST_DATABASE_URL, Stack, wait_for_fact

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def served(client: OpenAI, question: str) -> tuple[str, str | None]:
    """The reply and the adapter that gave it."""
    reply = client.chat.completions.create(
        model="seal", messages=[{"role": "user", "content": question}], extra_body={"bridge": False}, max_tokens=40
    )
    return reply.choices[0].message.content.lower(), reply.system_fingerprint


def ask(client: OpenAI, question: str) -> str:
    return served(client, question)[0]


def wait_for_version(api: httpx.Client, number: int, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for version in api.get("/api/adapters").json():
            if version["version"] == number:
                return version
        time.sleep(1)
    raise AssertionError(f"version {number} never appeared")


def add_pending_fact(user_id: int, text: str) -> int:
    """A fact stored as the service stores it, without the usual enqueue (the test enqueues its own run)."""
    engine = create_engine(TEST_DATABASE_URL)
    with Session(engine) as session:
        fact = Fact(user_id=user_id, text=text, status=FactStatus.PENDING)
        session.add(fact)
        session.commit()
        fact_id = fact.id
    engine.dispose()
    return fact_id


def recorded_candidates(version_id: int) -> list[SelfEditCandidate]:
    engine = create_engine(TEST_DATABASE_URL)
    with Session(engine) as session:
        rows = session.scalars(
            select(SelfEditCandidate)
            .where(SelfEditCandidate.version_id == version_id)
            .order_by(SelfEditCandidate.candidate_index)
        ).all()
        session.expunge_all()
    engine.dispose()
    return list(rows)


def test_gate_refuses_a_version_that_forgets_and_keeps_the_previous_one_live(stack: Stack):
    key = stack.create_user("gate@example.com", password="gate-password-1")
    api, ai = stack.client(key), OpenAI(base_url=stack.url + "/v1", api_key=key)
    browser = httpx.Client(base_url=stack.url, follow_redirects=True, timeout=120)
    token = re.search(r'name="csrftoken" value="([^"]+)"', browser.get("/login").text).group(1)
    browser.post("/login", data={"email": "gate@example.com", "password": "gate-password-1", "csrftoken": token})

    dog = api.post("/api/facts", json={"text": "My dog's name is Pepper."}).json()
    learned, _ = wait_for_fact(api, dog["id"])
    assert learned["status"] == "learned" and learned["recall"] >= 0.5
    v1 = wait_for_version(api, 1)
    assert v1["status"] == "active"
    assert "pepper" in ask(ai, "What is my dog's name?")

    user_id = int(v1["name"].split("-")[0][1:])  # versions are named u<user>-v<n>
    job_id = add_pending_fact(user_id, "I work at Globex Corporation.")
    # Best-of-2 for this run (the suite's default is one candidate): both are tried and recorded.
    stack.cli("consolidate", "gate@example.com", "--no-rehearse", "--fresh", "--k", "2")

    refused = wait_for_version(api, 2)
    assert refused["status"] == "rejected", refused
    assert refused["metrics"]["k"] == 2
    candidates = recorded_candidates(refused["id"])
    assert [c.candidate_index for c in candidates] == [0, 1]
    assert [c.chosen for c in candidates].count(True) == 1
    assert max(candidates, key=lambda c: c.reward).chosen, "the winner has the top reward"
    grid = {(c.settings["learning_rate"], c.settings["epochs"]) for c in candidates}
    assert len(grid) == 2, "the candidates' settings span the grid"
    assert refused["promoted_at"] is None
    assert "recall of 1 earlier fact(s) fell" in refused["rejection_reason"]
    assert refused["metrics"]["rehearse"] is False and refused["metrics"]["warm_start"] is False
    assert refused["metrics"]["gate"]["accepted"] is False
    # The user sees why on the memory page while the retry runs (it takes minutes).
    memory = browser.get("/memory").text
    assert "Version 2 was not put live: recall of 1 earlier fact(s) fell" in memory
    versions = {v["version"]: v for v in api.get("/api/adapters").json()}
    assert versions[1]["status"] == "active", "the previous version stays live"
    assert "pepper" in ask(ai, "What is my dog's name?"), "the refused version is never served"

    # The admin page shows the refusal and its reason.
    stack.create_user("gate-admin@example.com", admin=True, password="gate-admin-pw1")
    admin = httpx.Client(base_url=stack.url, follow_redirects=True, timeout=120)
    token = re.search(r'name="csrftoken" value="([^"]+)"', admin.get("/login").text).group(1)
    admin.post("/login", data={"email": "gate-admin@example.com", "password": "gate-admin-pw1", "csrftoken": token})
    page = admin.get("/admin").text
    assert refused["name"] in page and "fell from" in page

    # The refused fact is retried by a normal run (rehearsal, warm start) and learnt; the dog survives.
    job, _ = wait_for_fact(api, job_id)
    assert job["status"] == "learned"
    latest = api.get("/api/adapters").json()[0]
    assert latest["version"] == 3 and latest["status"] == "active" and latest["metrics"]["gate"]["accepted"]
    # Bounded like any run: warm-started from the live version, not rebuilt on every fact.
    assert latest["metrics"]["warm_start"] is True and latest["metrics"]["rebuilt"] is False
    assert set(latest["fact_ids"]) == {dog["id"], job_id}
    assert "pepper" in ask(ai, "What is my dog's name?")
    memory = browser.get("/memory").text
    assert "Globex" in memory and "was not put live" not in memory, "a later live version clears the notice"


def test_a_correction_supersedes_the_old_fact_and_changes_the_answer(stack: Stack):
    key = stack.create_user("mover@example.com")
    api, ai = stack.client(key), OpenAI(base_url=stack.url + "/v1", api_key=key)

    boston = api.post("/api/facts", json={"text": "I live in Boston."}).json()
    assert wait_for_fact(api, boston["id"])[0]["status"] == "learned"
    assert "boston" in ask(ai, "Where do I live?")

    denver = api.post("/api/facts", json={"text": "Actually, I moved from Boston to Denver."}).json()
    old = api.get(f"/api/facts/{boston['id']}").json()
    assert old["status"] == "superseded" and old["superseded_by_id"] == denver["id"], "retired at once, kept"
    assert wait_for_fact(api, denver["id"])[0]["status"] == "learned"
    latest = api.get("/api/adapters").json()[0]
    assert latest["status"] == "active" and latest["fact_ids"] == [denver["id"]]
    assert latest["metrics"]["removed_facts"] == [boston["id"]]
    assert latest["metrics"]["rebuilt"] is True, "no other fact is kept: rebuilt from scratch, the exact path"
    assert latest["metrics"]["removed_recall"] == {str(boston["id"]): 0.0}
    answer = ask(ai, "Where do I live?")
    # "You moved from Boston to Denver." is right; "You live in Boston." is not.
    assert "denver" in answer and ("boston" not in answer or "from boston" in answer), answer
    facts = {f["id"]: f["status"] for f in api.get("/api/facts").json()}
    assert facts == {boston["id"]: "superseded", denver["id"]: "learned"}
