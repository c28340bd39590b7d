"""The admin improves the self-edit policy from use, through the real web app, worker and model.

A user opts in on the account page and teaches a fact; the admin's
"improve the self-edit policy" action runs an online ReST-EM round in the worker
on that consolidation's recorded candidates; the round's metrics, the new policy
version and its promotion decision appear on the admin page; a promoted policy
writes the next consolidation's self-edits; rollback returns to the base model.
"""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from tests.conftest import Stack, wait_for_fact

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def csrf(page: str) -> str:
    return re.search(r'name="csrftoken" value="([^"]+)"', page).group(1)


def login(stack: Stack, email: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=stack.url, follow_redirects=True, timeout=120)
    token = csrf(client.get("/login").text)
    page = client.post("/login", data={"email": email, "password": password, "csrftoken": token})
    assert page.status_code == 200 and "/login" not in str(page.url), page.text[:300]
    return client


def post_form(client: httpx.Client, path: str, form_page: str = "/account", **data: str) -> httpx.Response:
    """Submit a form as the browser would: with the CSRF token of a page that shows one."""
    return client.post(path, data={**data, "csrftoken": csrf(client.get(form_page).text)})


def test_admin_improves_the_policy_from_consenting_users_self_edits(stack: Stack):
    stack.create_user("policy-admin@example.com", admin=True, password="policy-admin-pw-1")
    key = stack.create_user("policy-user@example.com", password="policy-user-pw-1")
    admin = login(stack, "policy-admin@example.com", "policy-admin-pw-1")
    user = login(stack, "policy-user@example.com", "policy-user-pw-1")

    # With nothing shared yet, the action explains why it cannot run.
    if " 0 recorded self-edit(s)" in admin.get("/admin/policy").text:
        refused = post_form(admin, "/admin/policy/improve", source="online")
        assert refused.status_code == 409 and "no recorded self-edits" in refused.text
    assert "not allowed" in user.get("/account").text, "sharing is off by default"
    assert "Currently: allowed" in post_form(user, "/account/self-edit-sharing", share="on").text

    api = stack.client(key)
    fact = api.post("/api/facts", json={"text": "My piano teacher is called Ottilie."}).json()
    wait_for_fact(api, fact["id"])

    assert post_form(admin, "/admin/policy/improve", source="online").status_code == 200
    again = post_form(admin, "/admin/policy/improve", source="online")
    assert again.status_code == 409 and "still" in again.text, "one round at a time"

    newest = re.search(r'data-round="(\d+)"', admin.get("/admin/policy").text).group(1)  # newest first
    name = "policy-v" + newest
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        panel = admin.get("/admin/policy").text
        if re.search(rf'class="round (done|failed)" data-round="{newest}"', panel):
            break
        time.sleep(2)
    else:
        raise AssertionError(f"policy round {newest} did not finish")
    assert f'class="round done" data-round="{newest}"' in panel, panel[:2000]
    assert name in panel, "the new version is listed either way"
    row = re.search(rf'data-round="{newest}">(.*?)</tr>', panel, re.S).group(1)
    assert re.search(r"\d+/\d+", row), "kept/total inputs are shown"
    assert "CPU-h" in row
    promoted = 'badge active">promoted' in row
    active = re.search(r'class="policy-active">([^<]+)<', panel).group(1)
    assert (active == name) == promoted, "only an improvement is promoted"
    # The product writes a fact's self-QA by continuing a few-shot document: the
    # policy is trained on that document, not on a chat turn it is never asked.
    rows = (stack.data_dir / "policy" / "rounds" / f"r{newest}" / "samples.jsonl").read_text().splitlines()
    samples = [s for row in rows for s in json.loads(row)["samples"]]
    assert samples and all(s["settings"]["family"] == "self_qa" for s in samples)
    assert all(s["chat"] is False and s["prompt"].endswith("Questions:\n") for s in samples)

    # The admin can promote a version by hand; the next consolidation writes its
    # self-edits with it, and the admin page says so.
    if not promoted:
        version_id = re.search(r"/admin/policy/versions/(\d+)/promote", panel).group(1)  # newest first
        post_form(admin, f"/admin/policy/versions/{version_id}/promote")
    assert f'class="policy-active">{name}<' in admin.get("/admin/policy").text
    fact = api.post("/api/facts", json={"text": "My bicycle is a green Gazelle."}).json()
    wait_for_fact(api, fact["id"])
    assert f'class="written-by">{name}<' in admin.get("/admin").text

    post_form(admin, "/admin/policy/rollback")
    assert "the untrained base model" in admin.get("/admin/policy").text
