"""`sealchat run` keeps its processes up: a child killed with SIGKILL is started
again, the others are left alone, and restarts back off while a child keeps dying."""

from __future__ import annotations

import os
import signal
import sys
import time

from app.supervisor import FIRST_BACKOFF_S, Child, Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
CRASHER = [sys.executable, "-c", "raise SystemExit(3)"]


def wait_until(condition, supervisor: Supervisor, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        supervisor.check()
        time.sleep(0.05)


def test_a_killed_child_is_restarted_and_the_others_keep_running():
    worker, web = Child("worker", SLEEPER), Child("web", SLEEPER)
    supervisor = Supervisor([worker, web])
    supervisor.start()
    try:
        web_pid, worker_pid = web.process.pid, worker.process.pid
        os.kill(worker_pid, signal.SIGKILL)
        wait_until(lambda: worker.restarts == 1, supervisor)
        assert worker.process.pid != worker_pid and worker.process.poll() is None
        assert web.process.pid == web_pid and web.process.poll() is None, "the web process stayed up"
    finally:
        supervisor.stop(timeout_s=5)
    assert worker.process.poll() is not None and web.process.poll() is not None


def test_a_child_that_keeps_dying_is_restarted_with_growing_backoff():
    crasher = Child("worker", CRASHER)
    supervisor = Supervisor([crasher])
    supervisor.start()
    try:
        wait_until(lambda: crasher.restarts == 2, supervisor)
        assert crasher.backoff_s >= 4 * FIRST_BACKOFF_S, "1 s, then 2 s, next 4 s"
    finally:
        supervisor.stop(timeout_s=5)


def test_keep_alive_runs_every_round():
    calls: list[int] = []
    supervisor = Supervisor([], keep_alive=lambda: calls.append(1))
    supervisor.check()
    supervisor.check()
    assert len(calls) == 2


def test_a_child_gets_its_own_environment_each_time_it_starts():
    """The vLLM server is started with its own variables (runtime LoRA updating)."""
    check = [sys.executable, "-c", "import os, sys; sys.exit(0 if os.environ.get('SEALCHAT_X') == '1' else 3)"]
    child = Child("server", check, env={**os.environ, "SEALCHAT_X": "1"})
    child.start()
    assert child.process.wait(timeout=30) == 0
    assert "SEALCHAT_X" not in os.environ
