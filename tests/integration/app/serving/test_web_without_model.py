"""A web process started with SEALCHAT_LOAD_MODEL=false serves pages and the API, and
answers a chat request with a clear 503, not a crash (a web replica beside serving ones)."""

from __future__ import annotations

import subprocess

import httpx

from app.cli import web_command
from benchmarks.processes import wait_until_serving
from tests.conftest import ROOT, Stack, _free_port


def test_a_web_process_without_the_model_refuses_replies_with_503(stack: Stack, tmp_path):
    port = _free_port()
    log_path = tmp_path / "web-no-model.log"
    with open(log_path, "w") as log:
        web = subprocess.Popen(
            web_command("127.0.0.1", port),
            env={**stack.env, "SEALCHAT_LOAD_MODEL": "false"},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_serving(url, web, 120, log_path)
            key = stack.create_user("no-model@example.com")
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as api:
                assert api.get("/api/facts").status_code == 200, "the API works without the model"
                body = {"model": "seal", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8}
                for stream in (False, True):
                    reply = api.post("/v1/chat/completions", json={**body, "stream": stream})
                    assert reply.status_code == 503, reply.text
                    assert "does not generate replies" in reply.json()["error"]["message"]
        finally:
            web.terminate()
            web.wait(timeout=30)
    assert "Traceback" not in log_path.read_text()
