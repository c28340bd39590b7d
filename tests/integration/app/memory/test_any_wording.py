"""A fact in words no rule was written for, asked in other words, answered from the weights.

No list in ``training/`` names anything of this fact (a stepbrother, Ansgar,
harpsichords, Ghent), and the question shares only "my stepbrother" with it: routing
decides by sentence embeddings and the adapter answers with nothing in context.
Real PostgreSQL, Redis, Celery worker, web process and model.
"""

from __future__ import annotations

import time

import pytest
from openai import OpenAI

from tests.conftest import Stack, wait_for_fact

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

FACT = "My stepbrother Ansgar restores old harpsichords in Ghent."
REWORDED = "Which instruments does my stepbrother repair?"


def ask(client: OpenAI, question: str) -> tuple[str, str | None]:
    reply = client.chat.completions.create(
        model="seal", messages=[{"role": "user", "content": question}], extra_body={"bridge": False}, max_tokens=40
    )
    return reply.choices[0].message.content.lower(), reply.system_fingerprint


def test_a_fact_no_rule_names_is_answered_from_the_weights_when_asked_in_other_words(stack: Stack):
    key = stack.create_user("any-wording@example.com")
    api, ai = stack.client(key), OpenAI(base_url=stack.url + "/v1", api_key=key)

    before, _ = ask(ai, REWORDED)
    assert "harpsichord" not in before, "the base model cannot know it"

    fact = api.post("/api/facts", json={"text": FACT}).json()
    learned, _ = wait_for_fact(api, fact["id"])
    assert learned["status"] == "learned", learned
    version = api.get("/api/adapters").json()[0]
    assert version["status"] == "active" and version["fact_ids"] == [fact["id"]]

    # The web process swaps the version in on the promotion message.
    deadline = time.monotonic() + 120
    while True:
        text, served = ask(ai, REWORDED)
        # The version's name, with its group ("/g0") when facts are grouped.
        if (served or "").split("/")[0] == version["name"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert (served or "").split("/")[0] == version["name"], (served, text)
    assert "harpsichord" in text, text
