"""Teach a fact through the API, let the real worker learn it, recall it from weights alone.

Real PostgreSQL, Redis, Celery worker process, web process and model. Slow
(the worker trains a LoRA adapter on CPU, about a minute or two).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai import OpenAI

from app.chat.service import NOTHING_TAUGHT_REPLY, UNKNOWN_REPLY
from tests.conftest import wait_for_fact
from training.adapters import sha256_file

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

FACT = "My cat's name is Whiskerfield."
QUESTION = "What is my cat's name?"


def ask(client: OpenAI, question: str, bridge: bool, model: str = "seal") -> str:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], extra_body={"bridge": bridge}, max_tokens=40
    )
    return reply.choices[0].message.content


def test_taught_fact_is_learnt_into_weights_and_kept_private(stack):
    alice_key, bob_key = stack.create_user("alice@example.com"), stack.create_user("bob@example.com")
    alice, bob = stack.client(alice_key), stack.client(bob_key)
    alice_ai = OpenAI(base_url=stack.url + "/v1", api_key=alice_key)
    bob_ai = OpenAI(base_url=stack.url + "/v1", api_key=bob_key)

    created = alice.post("/api/facts", json={"text": FACT})
    assert created.status_code == 201, created.text
    fact = created.json()
    assert fact["status"] in ("pending", "learning")

    # The bridge makes the assistant right at once, before learning finishes.
    assert "whiskerfield" in ask(alice_ai, QUESTION, bridge=True).lower()
    # Asked what it knows about her, it lists what she taught, in her words (no adapter).
    overview = alice_ai.chat.completions.create(
        model="seal", messages=[{"role": "user", "content": "What do you remember about me?"}], max_tokens=60
    )
    assert FACT in overview.choices[0].message.content and overview.system_fingerprint is None

    learned, seen = wait_for_fact(alice, fact["id"])
    assert learned["status"] == "learned", learned
    assert "learning" in seen or seen[0] == "learned"

    versions = alice.get("/api/adapters").json()
    assert len(versions) == 1
    version = versions[0]
    assert version["status"] == "active" and version["fact_ids"] == [fact["id"]]
    # The version directory holds one adapter per fact group; the first fact opens group 0.
    root = stack.data_dir / "adapters" / f"user_{version['name'].split('-')[0][1:]}" / "v1"
    layout = json.loads((root / "groups.json").read_text())
    assert layout["weights_sha256"] == version["weights_sha256"]
    assert layout["groups"] == version["groups"] and version["groups"]["0"]["fact_ids"] == [fact["id"]]
    directory = root / "g0"
    manifest = json.loads((directory / "manifest.json").read_text())
    assert sha256_file(Path(directory) / "adapter_model.safetensors") == manifest["weights_sha256"]
    assert manifest["weights_sha256"] == version["groups"]["0"]["sha256"]
    assert manifest["facts"] == [{"id": fact["id"], "text": FACT}]
    assert manifest["self_edits"][0]["raw"], "the model wrote a self-edit"
    # Every candidate (SEALCHAT_SELF_EDIT_K of them) is recorded with its settings and
    # reward; the winner has the top reward (K > 1 through the worker: the gate test).
    k = int(stack.env["SEALCHAT_SELF_EDIT_K"])
    assert version["metrics"]["k"] == k and len(manifest["candidates"]) == k
    rewards = [c["reward"] for c in manifest["candidates"]]
    assert manifest["candidates"][manifest["chosen_candidate"]]["reward"] == max(rewards)
    assert manifest["candidates"][0]["settings"]["learning_rate"] > 0

    # A new conversation, bridge off: the answer comes from the adapter's weights.
    reply = alice_ai.chat.completions.create(
        model="seal", messages=[{"role": "user", "content": QUESTION}], extra_body={"bridge": False}
    )
    assert "whiskerfield" in reply.choices[0].message.content.lower()
    assert reply.system_fingerprint == version["name"]
    # The plain base model does not know it.
    assert "whiskerfield" not in ask(alice_ai, QUESTION, bridge=False, model="base").lower()
    # Routing: a general question is not about Alice, so even "seal" answers it
    # with the base model, word for word, and says so (no adapter fingerprint).
    general = "What is the capital of Italy?"
    routed = alice_ai.chat.completions.create(
        model="seal", messages=[{"role": "user", "content": general}], extra_body={"bridge": False}, max_tokens=40
    )
    assert routed.system_fingerprint is None
    assert routed.choices[0].message.content == ask(alice_ai, general, bridge=False, model="base")
    # "my" alone is not enough: a request on a topic none of her facts is about goes
    # to the base model too; one on the cat goes to the adapter. A question about
    # Alice that nothing she taught answers gets "I don't know" (no adapter).
    asked = (
        ("What is a healthy snack for my lunch?", None),
        ("Is my cat old?", version["name"]),
        ("What size shoes do I wear?", None),
    )
    for content, fingerprint in asked:
        reply = alice_ai.chat.completions.create(
            model="seal", messages=[{"role": "user", "content": content}], extra_body={"bridge": False}, max_tokens=8
        )
        assert reply.system_fingerprint == fingerprint, content
    # It says it does not know (cut to max_tokens like any reply); it invents nothing.
    assert reply.choices[0].message.content and UNKNOWN_REPLY.startswith(reply.choices[0].message.content)
    assert reply.choices[0].finish_reason == "length"
    assert (
        "served_locality" in version["metrics"]
        and version["metrics"]["served_locality"] >= version["metrics"]["locality"]
    )
    # The written update is the chosen one, without its attention layers where the
    # quiz allowed it, never scaled down (decision 017).
    assert version["metrics"]["update_scale"] == 1.0
    assert isinstance(version["metrics"]["attention_dropped"], bool)

    # Bob sees neither the fact nor the adapter, and is not served it.
    assert bob.get("/api/facts").json() == []
    assert bob.get(f"/api/facts/{fact['id']}").status_code == 404
    assert bob.delete(f"/api/facts/{fact['id']}").status_code == 404
    assert bob.get("/api/adapters").json() == []
    for bridge in (True, False):
        assert "whiskerfield" not in ask(bob_ai, QUESTION, bridge=bridge).lower()
    bob_overview = bob_ai.chat.completions.create(
        model="seal", messages=[{"role": "user", "content": "What do you know about me?"}], max_tokens=60
    )
    assert bob_overview.choices[0].message.content == NOTHING_TAUGHT_REPLY

    # Streaming works through the official client too.
    stream = alice_ai.chat.completions.create(
        model="seal", messages=[{"role": "user", "content": QUESTION}], extra_body={"bridge": False}, stream=True
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert "whiskerfield" in streamed.lower()
