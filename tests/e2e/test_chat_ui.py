"""The chat as people use it, in a real browser (Debian's Chromium) on a phone-sized
and a desktop screen: every page fits and passes axe-core, the keyboard alone can
send, stop and open a conversation, replies render as safe Markdown, copy,
regenerate, rename, search and delete work, a busy server is answered with a
friendly error and a retry, "What do you remember about me?" lists the user's facts,
and a statement about the user is offered as a memory.
Saves screenshots of the chat and memory pages at both sizes under docs/.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app.models import Message
from tests.conftest import ROOT, TEST_DATABASE_URL, Stack, wait_for_fact
from tests.e2e.conftest import (
    DESKTOP,
    PHONE,
    TABLET,
    horizontal_overflow,
    log_in,
    send,
    serious_accessibility_violations,
    with_axe,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(900)]

DOCS = ROOT / "docs"
EMAIL, PASSWORD = "ui@example.com", "ui-password-1"
OLD_FACT = "My sister lives in Bergen."


@dataclass
class UiUser:
    api: httpx.Client
    old_fact_id: int


@pytest.fixture(scope="module")
def ui_user(stack: Stack) -> UiUser:
    """An admin (so every page can be checked) with one fact taught, and an API client for them."""
    api = stack.client(stack.create_user(EMAIL, admin=True, password=PASSWORD))
    # The admin page lists every user by address: a long one must wrap, not widen the page.
    stack.create_user("a.rather.long.address.for.layout.checks.0123456789@example.com")
    response = api.post("/api/facts", json={"text": OLD_FACT})
    assert response.status_code == 201
    return UiUser(api, response.json()["id"])


def new_page(browser, stack: Stack, viewport: dict):
    context = browser.new_context(viewport=viewport)
    with_axe(context)
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, stack.url, EMAIL, PASSWORD)
    return page, errors


def new_conversation(page) -> int:
    """Start a conversation from the sidebar (opening it first on a narrow screen); its id."""
    if not page.locator("#new-conversation").is_visible():
        page.click("#toggle-sidebar")
    page.click("#new-conversation")
    page.wait_for_url(re.compile(r".*/chat/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


@pytest.mark.parametrize("viewport", [PHONE, TABLET, DESKTOP], ids=["390x844", "768x1024", "1280x800"])
def test_every_page_fits_the_screen_and_passes_axe(stack: Stack, browser, ui_user, viewport):
    page, errors = new_page(browser, stack, viewport)
    width = viewport["width"]
    send(page, "Hello! Can you show me a tiny Python example?")

    # Chat: nothing overflows; the composer and its controls are visible and usable.
    assert horizontal_overflow(page) == 0
    for control in ("#content", "#send", "#bridge"):
        expect(page.locator(control)).to_be_visible()
    box = page.locator("#send").bounding_box()
    assert box and box["x"] + box["width"] <= width, box
    bubble = page.locator(".msg.user .bubble").last.bounding_box()
    assert bubble and bubble["width"] > 120, "a message bubble is squeezed into a narrow column"
    if width < 768:
        # The conversation list is behind a button, and opens over the chat.
        expect(page.locator("#sidebar")).to_be_hidden()
        page.click("#toggle-sidebar")
        expect(page.locator("#new-conversation")).to_be_visible()
        expect(page.locator("#toggle-sidebar")).to_have_attribute("aria-expanded", "true")
        page.click("#close-sidebar")
        expect(page.locator("#sidebar")).to_be_hidden()
    else:
        expect(page.locator("#new-conversation")).to_be_visible()
        expect(page.locator("#toggle-sidebar")).to_be_hidden()
    assert serious_accessibility_violations(page) == []
    if width != TABLET["width"]:
        page.screenshot(path=str(DOCS / f"screenshot-chat-{width}.png"))

    # The memory and admin pages with a learnt fact and an adapter version in their tables.
    fact, _ = wait_for_fact(ui_user.api, ui_user.old_fact_id)
    assert fact["status"] == "learned", fact

    for path, controls in (
        ("/memory", ("#fact-text", "#remember")),
        ("/account", ("#suggest", "form.suggestions button")),
        ("/admin", ("table.versions", "text=Improve the self-edit policy from use")),
    ):
        page.goto(stack.url + path)
        assert horizontal_overflow(page) == 0, f"{path} is wider than {width}px"
        for control in controls:
            expect(page.locator(control).first).to_be_visible()
        # Navigation fits: every link is inside the window and clickable.
        for link in page.locator("header.top a, header.top button").all():
            link_box = link.bounding_box()
            assert link_box and link_box["x"] + link_box["width"] <= width, (path, link.inner_text())
        assert serious_accessibility_violations(page) == [], path
        if path == "/memory" and width != TABLET["width"]:
            page.screenshot(path=str(DOCS / f"screenshot-memory-{width}.png"))
    assert errors == []


def test_keyboard_alone_sends_stops_and_opens_a_conversation(stack: Stack, browser, ui_user):
    page, errors = new_page(browser, stack, DESKTOP)
    first = new_conversation(page)
    send(page, "Say hi.")
    new_conversation(page)

    # The composer has focus on arrival; Shift+Enter adds a line, Enter sends.
    expect(page.locator("#content")).to_be_focused()
    page.keyboard.type("Line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    assert page.input_value("#content") == "Line one\nline two"
    expect(page.locator(".msg")).to_have_count(0)
    page.fill("#content", "")
    page.keyboard.type("Write a long story about a dragon who learns to bake bread.")
    page.keyboard.press("Enter")
    streaming = page.locator(".msg.assistant.streaming .bubble")
    expect(streaming).not_to_have_text("", timeout=60_000)
    expect(page.locator("#stop")).to_be_visible()
    # Tab from the composer reaches Stop (past the bridge switch); Enter presses it.
    page.keyboard.press("Tab")
    expect(page.locator("#bridge")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#stop")).to_be_focused()
    page.keyboard.press("Enter")
    reply = page.locator(".msg.assistant").last
    expect(reply.locator(".meta.stopped")).to_have_text("stopped")
    expect(page.locator("#send")).to_be_visible()
    shown = reply.locator(".bubble").inner_text().strip()

    # The server stopped too: what it kept is what was shown, not a finished story.
    time.sleep(2)
    page.reload()
    kept = page.locator(".msg.assistant .bubble").last.inner_text().strip()
    assert kept.startswith(shown[:10]) and len(kept) <= len(shown) + 60, (shown, kept)

    # Escape stops a reply too.
    page.keyboard.type("Tell me everything you know about the history of bread.")
    page.keyboard.press("Enter")
    expect(page.locator(".msg.assistant.streaming .bubble")).not_to_have_text("", timeout=60_000)
    page.keyboard.press("Escape")
    expect(page.locator(".msg.assistant").last.locator(".meta.stopped")).to_be_visible()

    # Open the earlier conversation with Tab and Enter only.
    target = f"/chat/{first}"
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('href')") == target:
            break
    else:
        pytest.fail(f"Tab never reached the link to {target}")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{target}")
    expect(page.locator(".msg.user")).to_contain_text("Say hi.")
    assert errors == []


def test_replies_render_as_markdown_and_html_stays_inert(stack: Stack, browser, ui_user):
    page, errors = new_page(browser, stack, DESKTOP)
    conversation = new_conversation(page)
    payload = (
        "Here is **bold** and `inline`.\n\n```python\nprint('hi')\n```\n\n"
        '<script>window.__xss = 1</script>\n\n<img src=x onerror="window.__xss = 2">\n\n'
        "[click](javascript:window.__xss=3) and [docs](https://example.com)"
    )
    engine = create_engine(TEST_DATABASE_URL)
    with Session(engine) as session:
        session.add(Message(conversation_id=conversation, role="user", content="Show me markdown"))
        session.add(Message(conversation_id=conversation, role="assistant", content=payload, bridge=True))
        session.commit()
    engine.dispose()
    page.reload()
    bubble = page.locator(".msg.assistant .bubble").last
    expect(bubble.locator("strong")).to_have_text("bold")
    expect(bubble.locator("pre code")).to_contain_text("print('hi')")
    expect(bubble).to_contain_text("<script>window.__xss = 1</script>")  # shown as text
    assert bubble.locator("script, img, [onerror]").count() == 0
    assert page.evaluate("window.__xss") is None
    assert bubble.locator("a", has_text="click").get_attribute("href") is None
    expect(bubble.locator("a", has_text="docs")).to_have_attribute("rel", re.compile("noopener"))
    assert errors == []


def test_copy_regenerate_rename_search_and_delete(stack: Stack, browser, ui_user):
    page, errors = new_page(browser, stack, DESKTOP)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.url)
    conversation = new_conversation(page)
    send(page, "Name a colour.")
    reply = page.locator(".msg.assistant").last
    reply.get_by_role("button", name="Copy").click()
    expect(reply.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == reply.get_attribute("data-markdown")

    # Regenerate replaces the last reply: one reply before and after, also once reloaded.
    first_id = reply.get_attribute("data-id")
    reply.get_by_role("button", name="Regenerate").click()
    expect(page.locator(".msg.assistant.done")).to_have_count(1, timeout=120_000)
    expect(page.locator(".msg.assistant").last).not_to_have_attribute("data-id", first_id or "")
    page.reload()
    expect(page.locator(".msg.assistant")).to_have_count(1)
    expect(page.locator(".msg.assistant").get_by_role("button", name="Regenerate")).to_have_count(1)

    # Rename.
    page.locator("summary", has_text="Edit").click()
    page.fill("#rename-title", "Colours I like")
    page.get_by_role("button", name="Rename").click()
    expect(page.locator("#chat-title")).to_have_text("Colours I like")
    expect(page.locator("#conversation-list [aria-current=page]")).to_have_text("Colours I like")

    # Search matches titles and messages, as the user types.
    other = new_conversation(page)
    send(page, "Tell me about zeppelins.")
    page.fill("#conversation-search", "zeppelin")
    expect(page.locator("#conversation-list li")).to_have_count(1)
    expect(page.locator("#conversation-list")).to_contain_text("Tell me about zeppelins.")
    page.fill("#conversation-search", "colours i")
    expect(page.locator("#conversation-list li")).to_have_count(1)
    expect(page.locator("#conversation-list")).to_contain_text("Colours I like")
    page.fill("#conversation-search", "no such words anywhere")
    expect(page.locator("#conversation-list")).to_contain_text("No conversation matches")

    # Delete (after a confirmation): gone from the list and from the server.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("summary", has_text="Edit").click()
    page.get_by_role("button", name="Delete conversation").click()
    page.wait_for_url(re.compile(r".*/chat/\d+$"))
    expect(page.locator(f"#conversation-list a[href='/chat/{other}']")).to_have_count(0)
    expect(page.locator(f"#conversation-list a[href='/chat/{conversation}']")).to_have_count(1)
    assert page.request.get(f"{stack.url}/chat/{other}").status == 404
    assert errors == []


def test_a_busy_server_gets_a_friendly_error_and_a_retry(stack: Stack, browser, ui_user):
    page, errors = new_page(browser, stack, PHONE)
    new_conversation(page)
    # The server's answer under overload (503 with Retry-After), for this one request.
    busy = {"left": 1}

    def overloaded(route):
        if busy["left"]:
            busy["left"] -= 1
            route.fulfill(status=503, headers={"Retry-After": "2"}, json={"error": {"message": "busy"}})
        else:
            route.continue_()

    page.route("**/chat/*/messages", overloaded)
    page.fill("#content", "What is the capital of France?")
    page.click("#send")
    error = page.locator("#chat-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("busy right now; try again in 2 s")
    expect(page.locator(".msg.assistant")).to_have_count(0)
    page.get_by_role("button", name="Retry").click()
    expect(page.locator(".msg.assistant.done")).to_have_count(1, timeout=120_000)
    expect(error).to_be_hidden()
    expect(page.locator(".msg.user")).to_have_count(1)  # sent once, not twice

    # A message the server refuses (a control character) says why.
    page.fill("#content", "bell \u0007 here")
    page.click("#send")
    expect(error).to_contain_text("Could not send: message contains control characters")
    assert errors == []


def test_asked_what_it_knows_it_lists_the_users_facts(stack: Stack, browser, ui_user):
    page, errors = new_page(browser, stack, PHONE)
    new_conversation(page)
    send(page, "What do you remember about me?")
    reply = page.locator(".msg.assistant.done").last
    taught = [
        f["text"] for f in ui_user.api.get("/api/facts").json() if f["status"] in ("pending", "learning", "learned")
    ]
    assert taught, "the module's user taught a fact"
    items = reply.locator(".bubble li")
    expect(items).to_have_count(len(taught))
    for text in taught:
        expect(items.filter(has_text=text)).to_have_count(1)
    expect(reply.locator(".meta")).to_contain_text("from your memory")
    assert serious_accessibility_violations(page) == []
    assert errors == []


def test_a_statement_about_the_user_is_offered_as_a_memory(stack: Stack, browser, ui_user):
    page, errors = new_page(browser, stack, PHONE)
    new_conversation(page)

    # A question is not offered; a statement is.
    send(page, "How do I boil an egg?")
    expect(page.locator(".msg.user").last.locator(".offer")).to_have_count(0)
    send(page, "My sister just moved to Oslo.")
    offer = page.locator(".msg.user").last.locator(".offer")
    # Close in meaning to a fact already taught: offered as a correction of it.
    expect(offer).to_contain_text(f"This may correct “{OLD_FACT}”")
    assert serious_accessibility_violations(page) == []
    offer.get_by_role("button", name="Replace it").click()
    expect(page.locator(".remembered").last).to_contain_text("Updated memory")
    facts = {f["text"]: f for f in ui_user.api.get("/api/facts").json()}
    assert facts[OLD_FACT]["status"] == "superseded"
    assert facts["My sister just moved to Oslo."]["status"] in ("pending", "learning", "learned")

    # Turned off on the account page: no more offers.
    page.goto(stack.url + "/account")
    page.uncheck("#suggest")
    page.locator("form.suggestions").get_by_role("button", name="Save").click()
    expect(page.locator("#suggestions-state")).to_have_text("Currently: off")
    page.goto(stack.url + "/chat")
    new_conversation(page)
    send(page, "I'm allergic to hazelnuts.")
    expect(page.locator(".msg.user").last.locator(".remember")).to_be_visible()
    expect(page.locator(".offer")).to_have_count(0)
    page.goto(stack.url + "/account")
    page.check("#suggest")
    page.locator("form.suggestions").get_by_role("button", name="Save").click()
    assert errors == []


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390x844", "1280x800"])
def test_the_sign_in_pages_fit_and_pass_axe(stack: Stack, browser, viewport):
    context = browser.new_context(viewport=viewport)
    with_axe(context)
    page = context.new_page()
    for path in ("/login", "/register"):
        page.goto(stack.url + path)
        assert horizontal_overflow(page) == 0, path
        expect(page.locator("button[type=submit]")).to_be_visible()
        assert serious_accessibility_violations(page) == [], path
    context.close()
