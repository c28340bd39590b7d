"""Schemathesis over the whole OpenAPI document of the live web process: whatever
it sends (valid or not, chat completions with a small ``max_tokens``), no answer is
a 5xx. The facts it teaches are forgotten afterwards so the worker is not kept busy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

EXAMPLES_PER_OPERATION = 20


def test_no_request_gets_a_server_error(stack: Stack, tmp_path):
    key = stack.create_user("schemathesis@example.com")
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.integration.app.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{stack.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {key}",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            "1",
            "--request-timeout",
            "120",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    api = stack.client(key)
    for fact in api.get("/api/facts").json():
        if fact["status"] in ("pending", "learning", "learned"):
            api.delete(f"/api/facts/{fact['id']}")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
