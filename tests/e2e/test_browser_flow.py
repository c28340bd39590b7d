"""The user's whole journey in a real browser (Debian's Chromium driven by Playwright).

register -> chat (a reply streams in) -> the "Remember this?" offer under a message -> memory page
until "learned" -> new conversation with the bridge off -> the answer comes from
the weights -> a correction on the memory page supersedes the fact; the user
allows their self-edits to train the shared policy, and the admin runs a policy
round from the admin page -> the user forgets the fact on the memory page and is
served the base model again. Saves screenshots of the chat, memory and admin
pages under docs/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT, Stack
from tests.e2e.conftest import send

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(1500)]

DOCS = ROOT / "docs"
FACT = "My dog's name is Biscotti."
QUESTION = "What is my dog's name?"
CORRECTED = "My dog's name is Rex."

COUNT_UPDATES = """
() => new Promise((resolve) => {
  const box = document.getElementById("messages");
  window.__updates = 0;
  new MutationObserver(() => { window.__updates += 1; })
    .observe(box, { subtree: true, childList: true, characterData: true });
  resolve(true);
})
"""


def test_teach_in_the_browser_then_recall_from_weights(stack: Stack, browser):
    admin_password = "admin-password-1"
    stack.create_user("admin-e2e@example.com", admin=True, password=admin_password)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(30_000)

    page.goto(stack.url + "/register")
    page.fill("input[name=email]", "e2e@example.com")
    page.fill("input[name=password]", "e2e-password")
    page.click("button[type=submit]")
    page.wait_for_url("**/chat/*")

    # The user allows their self-edits to train the shared self-edit policy (off by default).
    page.goto(stack.url + "/account")
    expect(page.locator("#sharing-state")).to_have_text("Currently: not allowed")
    page.check("#share")
    page.locator("form.sharing").get_by_role("button", name="Save").click()
    expect(page.locator("#sharing-state")).to_have_text("Currently: allowed")
    page.goto(stack.url + "/chat")
    page.click("#new-conversation")
    page.wait_for_url("**/chat/*")

    # A reply streams in: the bubble is updated many times, not once.
    page.evaluate(COUNT_UPDATES)
    reply = send(page, "Hello! Who are you?")
    assert reply.strip()
    assert page.evaluate("window.__updates") > 3

    # The message states something about the user: the chat offers to remember it,
    # and one click teaches it.
    send(page, FACT)
    offer = page.locator(".msg.user", has_text=FACT).locator(".offer")
    expect(offer).to_contain_text("Remember this?")
    offer.get_by_role("button", name="Remember", exact=True).click()
    expect(page.locator(".remembered")).to_contain_text("Remembering")

    page.goto(stack.url + "/memory")
    item = page.locator(".fact", has_text=FACT)
    expect(item).to_be_visible()
    expect(item.locator(".badge")).to_have_text("learning", timeout=300_000)
    # The progress bar moves while the worker trains (the list refreshes itself).
    page.wait_for_function(
        "() => { const p = document.querySelector('.fact progress'); return p && p.value >= 0.3; }",
        timeout=300_000,
    )
    page.screenshot(path=str(DOCS / "screenshot-memory-learning.png"))
    expect(item.locator(".badge")).to_have_text("learned", timeout=600_000)
    page.screenshot(path=str(DOCS / "screenshot-memory.png"))

    page.goto(stack.url + "/chat")
    page.click("#new-conversation")
    page.wait_for_url("**/chat/*")
    expect(page.locator(".msg")).to_have_count(0)
    page.uncheck("#bridge")
    answer = send(page, QUESTION)
    assert "biscotti" in answer.lower(), answer
    expect(page.locator(".msg.assistant .meta").last).to_contain_text("bridge off")
    expect(page.locator(".msg.assistant .meta").last).to_contain_text("-v1")  # the adapter answered
    # A general question is not about the user: the base model answers it, and says so.
    send(page, "What is the capital of Italy?")
    expect(page.locator(".msg.assistant .meta").last).to_contain_text("base model · general question")
    # About the user, but nothing taught answers it: the adapter is unsure, and the
    # assistant says it does not know instead of inventing an answer.
    assert "don't know that about you" in send(page, "What size shoes do I wear?")
    expect(page.locator(".msg.assistant .meta").last).to_contain_text("not in memory")
    page.screenshot(path=str(DOCS / "screenshot-chat.png"))

    # A correction on the memory page: the old fact moves to the history, the new one is learnt.
    page.goto(stack.url + "/memory")
    item = page.locator("ul.facts > li.fact", has_text=FACT).first
    # A blank correction is refused in place (422 swapped by htmx), and nothing changes.
    item.locator("summary", has_text="Correct").click()
    item.locator("input[name=text]").fill("   ")
    item.get_by_role("button", name="Save correction").click()
    expect(page.locator("#facts-error")).to_contain_text("at least 3 characters")
    expect(item.locator(".badge")).to_have_text("learned")
    item.locator("summary", has_text="Correct").click()
    item.locator("input[name=text]").fill(CORRECTED)
    item.get_by_role("button", name="Save correction").click()
    history = page.locator("details.history")
    expect(history).to_contain_text("Replaced by a correction (1)")
    history.locator("summary").click()
    expect(history.locator(".fact", has_text=FACT)).to_contain_text(f"by “{CORRECTED}”")
    expect(page.locator("#facts > ul.facts > li.fact").first).to_contain_text(CORRECTED)

    # The admin sees the new version with its metrics.
    page.click("text=Log out")
    page.fill("input[name=email]", "admin-e2e@example.com")
    page.fill("input[name=password]", admin_password)
    page.click("button[type=submit]")
    page.goto(stack.url + "/admin")
    # The correction's version records the new fact's candidates once it is learnt:
    # the policy panel counts them (the superseded fact's never count).
    for _ in range(120):
        if re.search(r"\b[1-9]\d* recorded self-edit", page.locator("#policy").inner_text()):
            break
        page.wait_for_timeout(5000)
        page.reload()
    row = page.locator(".admin-user").filter(has=page.locator("h2", has_text=re.compile(r"^\s*e2e@example\.com")))
    expect(row.locator("tr.active")).to_have_count(1)
    newest = row.locator("tr.details").first  # the correction's version, with its own candidates
    newest.locator("summary").click()
    expect(newest.locator("table.candidates tr.chosen")).to_have_count(1)
    expect(newest.locator("code.written-by").first).to_have_text(re.compile(r"base|policy-v\d+"))
    # How the chosen update was made smaller before it was written (decision 017).
    expect(newest).to_contain_text(re.compile(r"update written at (1\.0|0\.\d+)×"))

    # The admin improves the self-edit policy from use: a round runs in the worker
    # and its result appears in the panel, which refreshes itself while it runs.
    panel = page.locator("#policy")
    expect(panel).to_contain_text(re.compile(r"from [1-9]\d* user\(s\) who allow it"))
    panel.get_by_role("button", name="Improve the self-edit policy from use").click()
    expect(panel.locator("tr.round").first).to_have_class(re.compile(r"queued|running|done"))
    expect(panel.locator("tr.round").first).to_have_class(re.compile(r"\bdone\b"), timeout=600_000)
    expect(panel.locator("tr.round").first).to_contain_text("CPU-h")
    expect(panel.locator("table.policy-versions tr").nth(1)).to_contain_text("policy-v")
    page.screenshot(path=str(DOCS / "screenshot-admin.png"), full_page=True)

    # The user forgets the corrected fact on the memory page (after a confirmation).
    # It was the only fact left, so no version is trained: the user is served the
    # base model again, and the fact is shown as forgotten, its text erased.
    page.click("text=Log out")
    page.fill("input[name=email]", "e2e@example.com")
    page.fill("input[name=password]", "e2e-password")
    page.click("button[type=submit]")
    page.wait_for_url("**/chat/*")
    page.goto(stack.url + "/memory")
    by_text = page.locator("ul.facts > li.fact", has_text=CORRECTED).first
    expect(by_text.locator(".badge")).to_have_text("learned", timeout=300_000)
    item = page.locator(f"ul.facts > li.fact[data-id='{by_text.get_attribute('data-id')}']")
    page.once("dialog", lambda dialog: dialog.accept())
    item.get_by_role("button", name="Forget").click()
    expect(item.locator(".badge")).to_have_text("forgotten", timeout=300_000)
    expect(item).to_contain_text("no longer recalled")
    expect(item.locator(".fact-text")).to_have_text("(erased)")
    expect(page.locator("#facts")).not_to_contain_text(CORRECTED)
    expect(item.get_by_role("button", name="Forget")).to_have_count(0)
    page.goto(stack.url + "/chat")
    page.click("#new-conversation")
    page.wait_for_url("**/chat/*")
    page.uncheck("#bridge")
    send(page, QUESTION)
    expect(page.locator(".msg.assistant .meta").last).to_have_text(re.compile(r"^base model\b"))
