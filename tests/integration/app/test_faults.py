"""`sealchat run` as an operator starts it (embedded default: SQLite, its own Redis),
with the worker killed (SIGKILL, the whole process tree) in the middle of learning
a fact: the web process keeps answering, the worker is started again, the rerun
resumes after the candidate that had finished (so the stop, which came after
progress, is not counted as a crash of the fact), and the fact is learnt; no
half-written adapter is ever live. Then a run stopped by its soft time limit
(the signal Celery sends) after a finished candidate resumes the same way."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import time

import httpx
import pytest

from benchmarks.processes import create_user, pool_process, start_run, stop_run, wait_until_serving, worker_tree
from tests.conftest import REPLAY_CACHE, _free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def test_the_worker_killed_mid_learning_is_restarted_and_the_fact_learnt(tmp_path, base_model_folder):
    data = tmp_path / "d"  # short: the embedded Redis socket path is limited to 107 bytes
    (data / "replay").mkdir(parents=True)
    if REPLAY_CACHE.is_file():
        shutil.copyfile(REPLAY_CACHE, data / "replay" / "base-answers.json")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        SEALCHAT_DATA_DIR=str(data),
        SEALCHAT_BASE_MODEL=str(base_model_folder),
        SEALCHAT_SELF_EDIT_K="2",
        SEALCHAT_TRAIN_STEPS="16",
        SEALCHAT_LEARNING_RATE="1e-3",
        PYTHONUNBUFFERED="1",
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "run.log"
    run = start_run(env, port, log_path)
    try:
        wait_until_serving(url, run, 300, log_path)
        key = create_user(env, "ops@example.com")
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        fact = api.post("/api/facts", json={"text": "My boat is called Sea Biscuit."}).json()

        # Kill the worker once the first of its two candidates has finished.
        deadline = time.monotonic() + 600
        while not (api.get(f"/api/facts/{fact['id']}").json()["stage"] or "").startswith("candidate 2/2"):
            assert time.monotonic() < deadline, api.get(f"/api/facts/{fact['id']}").json()
            time.sleep(0.5)
        killed = worker_tree(run.pid)
        assert killed, "the worker runs under sealchat run"
        for pid in killed:
            os.kill(pid, signal.SIGKILL)

        # The web process keeps answering; the worker comes back.
        assert httpx.get(url + "/login", timeout=5).status_code == 200
        deadline = time.monotonic() + 60
        while not set(worker_tree(run.pid)) - set(killed):
            assert time.monotonic() < deadline, "the worker was not restarted"
            time.sleep(0.5)
        assert httpx.get(url + "/login", timeout=5).status_code == 200

        # The fact is learnt by a run that resumed; the killed run had checkpointed a
        # candidate, so its stop did not use up the fact's crash budget.
        deadline = time.monotonic() + 900
        while (status := api.get(f"/api/facts/{fact['id']}").json())["status"] not in ("learned", "failed"):
            assert time.monotonic() < deadline, status
            time.sleep(1)
        assert status["status"] == "learned", status
        with sqlite3.connect(data / "sealchat.db") as db:
            row = db.execute("SELECT crashes, checkpointed FROM facts WHERE id = ?", (fact["id"],)).fetchone()
            assert row == (0, 1), row
        assert "resuming after 1 finished candidate(s)" in log_path.read_text()
        versions = api.get("/api/adapters").json()
        assert [v["status"] for v in versions] == ["active"]
        user_dir = next((data / "adapters").glob("user_*"))
        assert (user_dir / f"v{versions[0]['version']}" / "groups.json").is_file(), "the live version is complete"
        assert not list(user_dir.glob(".build-*")) and not list(user_dir.glob(".checkpoint-*")), "nothing left over"

        # The soft time limit: Celery sends the pool process SIGUSR1, which raises
        # SoftTimeLimitExceeded in the task. Sent once a candidate is checkpointed,
        # the run stops, puts the fact back without counting a crash, and the run it
        # queues resumes from the checkpoint and learns it.
        second = api.post("/api/facts", json={"text": "My kayak is painted orange."}).json()
        deadline = time.monotonic() + 600
        while not (api.get(f"/api/facts/{second['id']}").json()["stage"] or "").startswith("candidate 2/2"):
            assert time.monotonic() < deadline, api.get(f"/api/facts/{second['id']}").json()
            time.sleep(0.5)
        pool = pool_process(run.pid)
        assert pool is not None
        os.kill(pool, signal.SIGUSR1)
        deadline = time.monotonic() + 900
        while (status := api.get(f"/api/facts/{second['id']}").json())["status"] not in ("learned", "failed"):
            assert time.monotonic() < deadline, status
            time.sleep(1)
        assert status["status"] == "learned", status
        log = log_path.read_text()
        assert "stopped at the time limit; resuming" in log
        assert log.count("resuming after 1 finished candidate(s)") >= 2, "the second run resumed too"
        with sqlite3.connect(data / "sealchat.db") as db:
            row = db.execute("SELECT crashes, checkpointed FROM facts WHERE id = ?", (second["id"],)).fetchone()
            assert row == (0, 1), row
        assert worker_tree(run.pid), "the worker kept running"
    finally:
        stop_run(run)
