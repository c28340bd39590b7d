"""Coalescing, rehearsal, forgetting and admin rollback with the real worker and model.

A fact taught while another is being learnt waits for the next run (not lost,
not trained twice); the next version keeps the first fact (rehearsal); forgetting
builds a version without the fact (its group rebuilt from scratch) and erases it,
with the versions that held it; an admin rollback hot-swaps the nearest version
that did not hold it back in without a restart.
"""

from __future__ import annotations

import re

import httpx
import pytest
from openai import OpenAI

from tests.conftest import Stack, wait_for_fact, wait_status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

SISTER = "My sister's name is Marguerite."
HOME = "I live in Denver."


def ask(client: OpenAI, question: str) -> str:
    reply = client.chat.completions.create(
        model="seal", messages=[{"role": "user", "content": question}], extra_body={"bridge": False}, max_tokens=40
    )
    return reply.choices[0].message.content.lower()


def admin_browser(stack: Stack) -> httpx.Client:
    stack.create_user("lifecycle-admin@example.com", admin=True, password="admin-password-2")
    browser = httpx.Client(base_url=stack.url, follow_redirects=True, timeout=120)
    token = re.search(r'name="csrftoken" value="([^"]+)"', browser.get("/login").text).group(1)
    browser.post(
        "/login", data={"email": "lifecycle-admin@example.com", "password": "admin-password-2", "csrftoken": token}
    )
    return browser


def test_coalescing_rehearsal_forget_and_rollback(stack: Stack):
    key = stack.create_user("carol@example.com")
    api, ai = stack.client(key), OpenAI(base_url=stack.url + "/v1", api_key=key)

    sister = api.post("/api/facts", json={"text": SISTER}).json()
    wait_status(api, sister["id"], {"learning"})
    home = api.post("/api/facts", json={"text": HOME}).json()

    learned_sister, _ = wait_for_fact(api, sister["id"])
    assert learned_sister["status"] == "learned"
    v1 = api.get("/api/adapters").json()[-1]
    assert v1["fact_ids"] == [sister["id"]], "the late fact was not trained in the running version"

    learned_home, _ = wait_for_fact(api, home["id"])
    assert learned_home["status"] == "learned"
    versions = api.get("/api/adapters").json()
    assert [v["version"] for v in versions] == [2, 1]
    v2 = versions[0]
    assert v2["status"] == "active" and v2["fact_ids"] == [sister["id"], home["id"]]
    assert versions[1]["status"] == "inactive"
    assert v2["metrics"]["warm_start"] is True
    rechecked = api.get(f"/api/facts/{sister['id']}").json()["recall"]
    assert rechecked == v2["metrics"]["kept_recall"][str(sister["id"])], "the fact shows its latest quiz, by v2"
    assert "denver" in ask(ai, "Where do I live?")
    assert "marguerite" in ask(ai, "What is my sister's name?"), "the earlier fact survived the new version"

    # Forget: a version without the fact is built and served: the group is rebuilt
    # from scratch on the fact it keeps, so nothing of the forgotten one was ever
    # trained into it, and the fact is "forgotten" only once that version's quiz says so.
    forgetting = api.delete(f"/api/facts/{home['id']}")
    assert forgetting.status_code == 202 and forgetting.json()["status"] == "forgetting"
    wait_status(api, home["id"], {"forgotten"})
    live = api.get("/api/adapters").json()[0]
    assert live["status"] == "active" and live["version"] == 3 and live["fact_ids"] == [sister["id"]]
    assert live["metrics"]["rebuilt"] is True and live["metrics"]["warm_start"] is False
    assert live["metrics"]["removed_recall"] == {str(home["id"]): 0.0}, "forgotten only once the quiz says so"
    assert "denver" not in ask(ai, "Where do I live?")
    assert "marguerite" in ask(ai, "What is my sister's name?")

    # Forgetting erased: the fact is a tombstone, and no recorded self-edit keeps it.
    tombstone = api.get(f"/api/facts/{home['id']}").json()
    assert tombstone["status"] == "forgotten" and tombstone["text"] == ""
    assert all(HOME not in str(v["metrics"]) for v in api.get("/api/adapters").json())

    # An admin cannot bring it back: v2 held the forgotten fact, so it was erased
    # (files deleted); a rollback goes to the nearest version that was not, v1,
    # and serving swaps to it without a restart.
    admin = admin_browser(stack)
    page = admin.get("/admin")
    assert live["name"] in page.text and v2["name"] in page.text
    assert HOME not in page.text, "the admin page shows no trace of the forgotten fact"
    assert page.text.count('class="chosen"') >= 1, "versions show their chosen self-edit candidate"
    token = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
    erased = next(v for v in api.get("/api/adapters").json() if v["id"] == v2["id"])
    assert erased["status"] == "erased"
    refused = admin.post(f"/admin/versions/{v2['id']}/promote", data={"csrftoken": token})
    assert refused.status_code == 409 and "erased" in refused.text
    user_id = re.search(r'data-user="(\d+)">\s*<h2>carol@example.com', page.text).group(1)
    rolled = admin.post(f"/admin/users/{user_id}/rollback", data={"csrftoken": token})
    assert rolled.status_code == 200
    admin.close()
    assert next(v for v in api.get("/api/adapters").json() if v["id"] == v1["id"])["status"] == "active"
    assert "denver" not in ask(ai, "Where do I live?"), "a rollback never brings a forgotten fact back"
    assert "marguerite" in ask(ai, "What is my sister's name?"), "the rolled-back version is served at once"
