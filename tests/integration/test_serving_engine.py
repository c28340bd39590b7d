"""Hot-swap in the serving engine, on the real model: a swap during a streamed reply
neither breaks the reply nor leaves the old version loaded, and users stay apart."""

from __future__ import annotations

import threading

import pytest

from app.adapters.service import AdapterRef
from app.serving.engine import ServingEngine
from app.settings import Settings
from training.adapters import AdapterHost
from training.chat import ChatMessage, with_system_prompt
from training.model import load_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def versions(base_model_folder, tmp_path_factory) -> list[AdapterRef]:
    """Two adapter versions with the project-wide shape (untrained: swapping is what is tested)."""
    out = tmp_path_factory.mktemp("versions")
    host = AdapterHost(load_model(base_model_folder))
    refs = []
    for name in ("u1-v1", "u1-v2"):
        host.add_fresh(name)
        host.save(name, out / name)
        refs.append(AdapterRef(name, out / name))
    return refs


@pytest.fixture(scope="module")
def engine(base_model_folder, tmp_path_factory) -> ServingEngine:
    settings = Settings(
        _env_file=None,
        SEALCHAT_BASE_MODEL=str(base_model_folder),
        SEALCHAT_DATA_DIR=tmp_path_factory.mktemp("engine"),
        SEALCHAT_MAX_RESIDENT_ADAPTERS=2,
    )
    engine = ServingEngine(settings)
    engine.start()
    return engine


def test_swap_during_a_stream_does_not_break_it(engine, versions):
    v1, v2 = versions
    prompt = with_system_prompt([ChatMessage("user", "Tell me a short story about a lighthouse.")])
    pieces: list[str] = []
    started = threading.Event()

    def consume() -> None:
        for piece in engine.stream(1, v1, prompt, max_new_tokens=48):
            pieces.append(piece)
            started.set()

    reader = threading.Thread(target=consume)
    reader.start()
    assert started.wait(60), "the reply started streaming"
    engine.preload(1, v2)  # waits for the in-flight reply, then swaps
    reader.join(60)
    assert not reader.is_alive() and len("".join(pieces).split()) > 10, "the reply finished"
    assert engine._routes[1] == "u1-v2"
    assert engine.host.names == {"u1-v2"}, "the replaced version was unloaded"


def test_each_user_is_routed_to_their_own_version(engine, versions):
    v1, v2 = versions
    engine.preload(1, v1)
    engine.preload(2, v2)
    assert engine._routes == {1: "u1-v1", 2: "u1-v2"}
    engine.preload(2, None)  # user 2's pointer cleared: base model, their adapter unloaded
    assert engine._routes == {1: "u1-v1"} and engine.host.names == {"u1-v1"}
