"""HTTP contract of the API and the pages: auth, validation, CSRF, OpenAPI (live stack)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import Stack, wait_status


def test_api_requires_a_valid_bearer_key(stack: Stack):
    with stack.client() as anon:
        assert anon.get("/api/facts").status_code == 401
        assert anon.get("/v1/models").status_code == 401
    with stack.client("sk-seal-not-a-key") as bad:
        response = bad.get("/api/facts")
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "invalid API key"


def test_fact_validation_errors_are_clear(stack: Stack):
    key = stack.create_user("validator@example.com")
    with stack.client(key) as api:
        assert api.post("/api/facts", json={"text": "hi"}).status_code == 422
        assert api.post("/api/facts", json={"text": "x" * 1001}).status_code == 422
        assert api.post("/api/facts", json={"fact": "wrong field"}).status_code == 422
        assert (
            api.post(
                "/api/facts", content=b"\xff\xfe not json", headers={"content-type": "application/json"}
            ).status_code
            == 400
        )
        bad = api.post("/api/facts", json={"text": "control \u0007 char"})
        assert bad.status_code == 422 and "control" in bad.json()["error"]["message"]
        assert api.get("/api/facts").json() == [], "nothing was stored from bad input"
        assert api.post("/v1/chat/completions", json={"model": "nope", "messages": []}).status_code == 422
        models = api.get("/v1/models").json()
        assert [m["id"] for m in models["data"]] == ["seal", "base"]


@pytest.mark.slow  # the worker starts learning the fact (real model) before it is corrected
def test_correcting_a_fact_supersedes_it_and_is_validated(stack: Stack):
    owner, other = stack.create_user("editor@example.com"), stack.create_user("intruder@example.com")
    with stack.client(owner) as api, stack.client(other) as intruder:
        old = api.post("/api/facts", json={"text": "My favourite tea is sencha."}).json()
        # The worker starts learning it; the correction below comes while it does.
        wait_status(api, old["id"], {"learning"}, timeout=300)
        assert intruder.put(f"/api/facts/{old['id']}", json={"text": "My favourite tea is chai."}).status_code == 404
        assert api.put(f"/api/facts/{old['id']}", json={"text": "x"}).status_code == 422
        assert api.put("/api/facts/999999", json={"text": "My favourite tea is chai."}).status_code == 404
        new = api.put(f"/api/facts/{old['id']}", json={"text": "My favourite tea is chai."})
        assert new.status_code == 201 and new.json()["text"] == "My favourite tea is chai."
        retired = api.get(f"/api/facts/{old['id']}").json()
        assert retired["status"] == "superseded" and retired["superseded_by_id"] == new.json()["id"]
        again = api.put(f"/api/facts/{old['id']}", json={"text": "My favourite tea is oolong."})
        assert again.status_code == 409, "a superseded fact is history: correct the current one"
        # Forgotten before any version holds it: nothing to take out of the weights.
        assert api.delete(f"/api/facts/{new.json()['id']}").json()["status"] in ("forgotten", "forgetting")
        wait_status(api, new.json()["id"], {"forgotten"}, timeout=300)
        # Forgotten while it is being learnt: that run stops too.
        oolong = api.post("/api/facts", json={"text": "My favourite tea is oolong."}).json()
        wait_status(api, oolong["id"], {"learning"}, timeout=300)
        assert api.delete(f"/api/facts/{oolong['id']}").json()["status"] == "forgetting"
        wait_status(api, oolong["id"], {"forgotten"}, timeout=600)
        # Both runs stopped once their fact changed (their plan was stale) and kept
        # nothing: no version was built, so none holds the retired or forgotten teas
        # (a version finished regardless would hold them while listing neither).
        assert api.get("/api/adapters").json() == []
        assert api.get(f"/api/facts/{old['id']}").json()["status"] == "superseded"


def test_openapi_lists_the_api(stack: Stack):
    paths = httpx.get(stack.url + "/openapi.json").json()["paths"]
    for path in ("/v1/chat/completions", "/v1/models", "/api/facts", "/api/facts/{fact_id}", "/api/adapters"):
        assert path in paths


def _csrf(page: str) -> str:
    return re.search(r'name="csrftoken" value="([^"]+)"', page).group(1)


def test_register_login_logout_and_csrf(stack: Stack):
    with httpx.Client(base_url=stack.url, follow_redirects=True, timeout=60) as browser:
        page = browser.get("/register").text
        form = {"email": "pages@example.com", "password": "correct horse"}
        # Without the CSRF token the form is refused.
        assert browser.post("/register", data=form).status_code == 403
        registered = browser.post("/register", data={**form, "csrftoken": _csrf(page)})
        assert registered.status_code == 200 and "pages@example.com" in registered.text
        assert "sk-seal-" in browser.get("/account").text, "the new API key is shown once"
        assert "sk-seal-" not in browser.get("/account").text
        chat = browser.get("/chat")
        assert 'id="composer"' in chat.text
        browser.post("/logout", data={"csrftoken": _csrf(chat.text)})
        assert browser.get("/memory").url.path == "/login"
        login_page = browser.get("/login").text
        wrong = browser.post(
            "/login", data={"email": form["email"], "password": "nope", "csrftoken": _csrf(login_page)}
        )
        assert wrong.status_code == 401 and "wrong email or password" in wrong.text
        ok = browser.post("/login", data={**form, "csrftoken": _csrf(login_page)})
        assert ok.url.path.startswith("/chat")
        # A non-admin cannot open the admin page.
        assert browser.get("/admin").status_code == 403
