"""Fact groups in the product, with the real model, PostgreSQL, worker and web server.

With one fact per group (``SEALCHAT_FACT_GROUP_SIZE=1`` for these runs), a second
fact trains a second adapter and the new version links the first group's files
unchanged; the web server answers each question with its own group's adapter;
forgetting the only fact of a group drops that group without training anything,
and the other group keeps answering from the same loaded adapter. (A new fact
joining a group with room, warm-started, is covered by test_memory_lifecycle.)
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.models import Fact, FactStatus, User
from tests.conftest import TEST_DATABASE_URL, Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

DOG, WORK = "My dog's name is Pepper.", "I work at Globex Corporation."
ONE_PER_GROUP = {"SEALCHAT_FACT_GROUP_SIZE": "1"}


def add_pending_fact(email: str, text: str) -> int:
    """A fact stored as the service stores it, without the usual enqueue: the test
    runs each consolidation itself (``sealchat consolidate --now``) with one fact per group."""
    engine = create_engine(TEST_DATABASE_URL)
    with Session(engine) as session:
        user = session.scalar(select(User).where(User.email == email))
        fact = Fact(user_id=user.id, text=text, status=FactStatus.PENDING)
        session.add(fact)
        session.commit()
        fact_id = fact.id
    engine.dispose()
    return fact_id


def wait_for_idle_worker(timeout: float = 900) -> None:
    """Until no fact of any user is being learnt or forgotten: an earlier test's
    consolidation still running beside this test's own (in the CLI) slows both
    several times over on two cores."""
    engine = create_engine(TEST_DATABASE_URL)
    busy = (FactStatus.PENDING, FactStatus.LEARNING, FactStatus.FORGETTING)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with Session(engine) as session:
                left = session.scalars(select(Fact.id).where(Fact.status.in_(busy))).all()
            if not left or time.monotonic() > deadline:
                return
            time.sleep(2)
    finally:
        engine.dispose()


def ask(client: OpenAI, question: str) -> tuple[str, str | None]:
    reply = client.chat.completions.create(
        model="seal", messages=[{"role": "user", "content": question}], extra_body={"bridge": False}, max_tokens=40
    )
    return reply.choices[0].message.content.lower(), reply.system_fingerprint


def wait_until_served(client: OpenAI, question: str, fingerprint: str, timeout: float = 120) -> str:
    """The web server swaps on the promotion message; wait for it to serve ``fingerprint``."""
    deadline = time.monotonic() + timeout
    while True:
        text, served = ask(client, question)
        if served == fingerprint or time.monotonic() > deadline:
            assert served == fingerprint, (question, served, text)
            return text
        time.sleep(1)


def weights(directory: str, group: int) -> Path:
    return Path(directory) / f"g{group}" / "adapter_model.safetensors"


def test_each_group_is_its_own_adapter_served_by_routing_and_forgotten_alone(stack: Stack):
    wait_for_idle_worker()
    email = "groups@example.com"
    key = stack.create_user(email)
    api, ai = stack.client(key), OpenAI(base_url=stack.url + "/v1", api_key=key)

    dog = add_pending_fact(email, DOG)
    print(stack.cli("consolidate", email, "--now", env=ONE_PER_GROUP))
    work = add_pending_fact(email, WORK)
    print(stack.cli("consolidate", email, "--now", env=ONE_PER_GROUP))

    v2, v1 = api.get("/api/adapters").json()[:2]
    assert (v1["version"], v2["version"]) == (1, 2) and v2["status"] == "active", (v1, v2)
    assert v2["fact_ids"] == [dog, work]
    assert {k: g["fact_ids"] for k, g in v2["groups"].items()} == {"0": [dog], "1": [work]}
    assert v2["metrics"]["group"] == 1 and v2["metrics"]["warm_start"] is False, "the new group starts fresh"
    assert v2["groups"]["0"]["built"] == 1 and v2["groups"]["0"]["sha256"] == v1["groups"]["0"]["sha256"]
    root = stack.data_dir / "adapters" / f"user_{v2['name'].split('-')[0][1:]}"
    assert weights(root / "v2", 0).stat().st_ino == weights(root / "v1", 0).stat().st_ino, "linked, not copied"
    layout = json.loads((root / "v2" / "groups.json").read_text())
    assert layout["weights_sha256"] == v2["weights_sha256"]

    # Each question reaches its fact's group (by its words) and is answered from the weights.
    assert "pepper" in wait_until_served(ai, "What is my dog's name?", f"{v2['name']}/g0")
    text, served = ask(ai, "Where do I work?")
    assert served == f"{v2['name']}/g1" and "globex" in text, (served, text)
    # About the user but no word shared with a fact: the group adapters' own
    # confidence picks one (either may answer; which one is measured in the benchmark).
    text, served = ask(ai, "Where am I employed?")
    print("Where am I employed?", served, text)
    assert served in (f"{v2['name']}/g0", f"{v2['name']}/g1")

    # Forget the dog: its group held nothing else, so the next version simply drops
    # it (no training) and links the other group; that adapter keeps answering. The
    # versions that held the dog are erased (their directories deleted), so the
    # shared group's file is compared by inode, taken now.
    work_inode = weights(root / "v2", 1).stat().st_ino
    assert api.delete(f"/api/facts/{dog}").status_code == 202
    deadline = time.monotonic() + 300
    while api.get(f"/api/facts/{dog}").json()["status"] != "forgotten":
        assert time.monotonic() < deadline, api.get(f"/api/facts/{dog}").json()
        time.sleep(1)
    v3 = api.get("/api/adapters").json()[0]
    assert v3["version"] == 3 and v3["status"] == "active" and v3["fact_ids"] == [work]
    assert v3["metrics"]["dropped_group"] is True and list(v3["groups"]) == ["1"]
    assert weights(root / "v3", 1).stat().st_ino == work_inode, "the kept group is the same file"
    statuses = {v["version"]: v["status"] for v in api.get("/api/adapters").json()}
    assert statuses[1] == statuses[2] == "erased" and not (root / "v1").exists() and not (root / "v2").exists()
    assert "globex" in wait_until_served(ai, "Where do I work?", v3["name"])
    text, served = ask(ai, "What is my dog's name?")
    assert "pepper" not in text, (served, text)
    assert {f["id"]: f["status"] for f in api.get("/api/facts").json()} == {dog: "forgotten", work: "learned"}

    # The admin page shows each version's groups, the dropped one included (no training metrics).
    stack.create_user("groups-admin@example.com", admin=True, password="groups-admin-pw1")
    admin = httpx.Client(base_url=stack.url, follow_redirects=True, timeout=120)
    token = re.search(r'name="csrftoken" value="([^"]+)"', admin.get("/login").text).group(1)
    admin.post("/login", data={"email": "groups-admin@example.com", "password": "groups-admin-pw1", "csrftoken": token})
    page = admin.get("/admin")
    admin.close()
    assert page.status_code == 200, page.text[-2000:]
    assert "2 groups; trained g1" in page.text and "1 group; dropped g0" in page.text
