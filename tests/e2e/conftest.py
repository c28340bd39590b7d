"""Browser fixtures: Debian's Chromium driven by Playwright (never a downloaded browser),
axe-core from npm (installed by scripts/setup.sh --test), and small page helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
AXE = ROOT / ".cache" / "node" / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
TABLET = {"width": 768, "height": 1024}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: run `bash scripts/setup.sh --test` (installs Debian's chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def send(page: Page, text: str) -> str:
    """Send a chat message and return the assistant's finished reply text."""
    before = page.locator(".msg.assistant.done").count()
    page.fill("#content", text)
    page.click("#send")
    done = page.locator(".msg.assistant.done").nth(before)
    done.wait_for(timeout=120_000)
    return done.locator(".bubble").inner_text()


def log_in(page: Page, url: str, email: str, password: str) -> None:
    page.goto(url + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/chat/*")


def with_axe(context: BrowserContext) -> None:
    """Load axe-core into every page of ``context``. As an init script: the pages'
    Content-Security-Policy forbids inline scripts, and this is not one of theirs."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} missing: run `bash scripts/setup.sh --test` (installs axe-core from npm)")
    context.add_init_script(path=str(AXE))


def serious_accessibility_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now (``with_axe`` first)."""
    assert page.evaluate("typeof window.axe") == "object", "axe-core is not loaded: call with_axe(context)"
    violations = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


def horizontal_overflow(page: Page) -> int:
    """How many pixels the page is wider than the window (0: nothing overflows)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
