"""What an attacker or a careless client tries, against the real web process:
cross-site forms, guessing passwords, enumerating accounts, stolen cookies,
framing, oversized or malformed bodies, and forgotten facts that linger."""

from __future__ import annotations

import re
import statistics
import time

import httpx
import pytest

from tests.conftest import Stack

CSRF = re.compile(r'name="csrftoken" value="([^"]+)"')


def token(page: httpx.Response) -> str:
    return CSRF.search(page.text).group(1)


def browser(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.url, follow_redirects=True, timeout=60)


def log_in(client: httpx.Client, email: str, password: str) -> httpx.Response:
    return client.post("/login", data={"email": email, "password": password, "csrftoken": token(client.get("/login"))})


def test_login_register_and_logout_need_the_csrf_token_even_without_cookies(stack: Stack):
    stack.create_user("csrf@example.com", password="csrf-password-1")
    for path in ("/login", "/register", "/logout"):
        # A fresh client: no cookies at all, as a forged cross-site form would arrive.
        with httpx.Client(base_url=stack.url, timeout=60) as fresh:
            answer = fresh.post(path, data={"email": "csrf@example.com", "password": "csrf-password-1"})
            assert answer.status_code == 403, path
    with browser(stack) as client:
        page = client.get("/login")
        forged = client.post(
            "/login",
            data={"email": "csrf@example.com", "password": "csrf-password-1", "csrftoken": token(page)},
            headers={"Origin": "https://attacker.example"},
        )
        assert forged.status_code == 403 and "cross-site" in forged.text
        assert log_in(client, "csrf@example.com", "csrf-password-1").url.path.startswith("/chat")


def test_password_guessing_is_throttled_per_account(stack: Stack):
    stack.create_user("guess@example.com", password="the-right-one")
    with browser(stack) as client:
        answers = [log_in(client, "guess@example.com", f"wrong-{i}").status_code for i in range(7)]
        assert answers[:5] == [401] * 5 and answers[5:] == [429, 429], answers
        locked = log_in(client, "guess@example.com", "the-right-one")
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        assert "Too many attempts" in locked.text
        # Another account from the same address is not locked.
        stack.create_user("other-guess@example.com", password="other-password")
        assert log_in(client, "other-guess@example.com", "other-password").url.path.startswith("/chat")


def test_accounts_cannot_be_enumerated(stack: Stack):
    stack.create_user("known@example.com", password="known-password-1")

    def login_seconds(email: str) -> float:
        with browser(stack) as client:
            page = client.get("/login")
            started = time.perf_counter()
            answer = client.post("/login", data={"email": email, "password": "not-it-at-all", "csrftoken": token(page)})
            assert answer.status_code == 401 and "wrong email or password" in answer.text
            return time.perf_counter() - started

    known = statistics.median(login_seconds("known@example.com") for _ in range(3))
    unknown = statistics.median(login_seconds(f"nobody-{i}@example.com") for i in range(3))
    # Before, an unknown email was answered ~40x faster (15 ms against 570 ms): both now verify a hash.
    assert unknown > known / 3, (known, unknown)

    with browser(stack) as client:
        form = {"email": "known@example.com", "password": "some-password-2"}
        taken = client.post("/register", data={**form, "csrftoken": token(client.get("/register"))})
        assert taken.status_code == 422
        assert "exist" not in taken.text and "could not create an account" in taken.text


def test_sessions_live_on_the_server_and_logout_revokes_them(stack: Stack):
    with browser(stack) as client:
        page = client.get("/register")
        client.post(
            "/register", data={"email": "cookie@example.com", "password": "cookie-password", "csrftoken": token(page)}
        )
        cookie = client.cookies["sealchat_session"]
        assert "sk-seal" not in cookie and "." not in cookie, "the cookie holds an opaque id, no data"
        assert "sk-seal-" in client.get("/account").text, "the API key is shown once"
        chat = client.get("/chat")
        client.post("/logout", data={"csrftoken": token(chat)})
    # A copy of the cookie taken before logout no longer works.
    with httpx.Client(base_url=stack.url, cookies={"sealchat_session": cookie}, timeout=60) as thief:
        assert thief.get("/memory").headers["location"] == "/login"


def test_security_headers(stack: Stack):
    answer = httpx.get(stack.url + "/login")
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"


@pytest.fixture(scope="module")
def api(stack: Stack) -> httpx.Client:
    return stack.client(stack.create_user("fuzz@example.com"))


def test_malformed_requests_get_4xx_not_5xx(stack: Stack, api: httpx.Client):
    for huge in (2**31, 2**63 - 2, 2**70):  # ids are 32-bit columns: beyond is a 422, not a driver error
        assert api.get(f"/api/facts/{huge}").status_code == 422
        assert api.delete(f"/api/facts/{huge}").status_code == 422
    oversized = api.post("/api/facts", content=b"x" * (2 * 1024 * 1024), headers={"content-type": "application/json"})
    assert oversized.status_code == 413
    lone = b'{"model": "base", "messages": [{"role": "user", "content": "hi \\ud800"}], "max_tokens": 2}'
    answer = api.post("/v1/chat/completions", content=lone, headers={"content-type": "application/json"})
    assert answer.status_code == 422 and "surrogate" in answer.json()["error"]["message"]
    with browser(stack) as client:
        page = client.get("/login")
        multipart = client.post("/login", files={"file": ("a.txt", b"x")}, data={"csrftoken": token(page)})
        assert multipart.status_code == 415
        bad_utf8 = client.post(
            "/login",
            content=b"email=\xff\xfe&password=x&csrftoken=" + token(page).encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert bad_utf8.status_code == 400
        nul = client.post("/login", data={"email": "a\x00@example.com", "password": "x", "csrftoken": token(page)})
        assert nul.status_code == 401


def test_a_fact_forgotten_before_it_was_learnt_is_erased_at_once(api: httpx.Client):
    fact = api.post("/api/facts", json={"text": "My locker code is 4471."}).json()
    correction = api.put(f"/api/facts/{fact['id']}", json={"text": "My locker code is 9902."}).json()
    forgotten = api.delete(f"/api/facts/{correction['id']}").json()
    if forgotten["status"] == "forgotten":  # the worker had not started on it
        assert forgotten["text"] == ""
    old = api.get(f"/api/facts/{fact['id']}").json()
    assert old["status"] == "superseded" and old["text"] == "", "a correction erases what it replaced"
    assert "4471" not in api.get("/api/facts").text


def test_a_conversation_search_with_control_characters_is_answered(stack: Stack):
    with browser(stack) as client:
        page = client.get("/register")
        form = {"email": "search@example.com", "password": "search-password", "csrftoken": token(page)}
        client.post("/register", data=form)
        answer = client.get("/chat/conversations", params={"q": "a\x00b\x07c"})
        assert answer.status_code == 200 and "No conversation matches" in answer.text
