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


def test_a_version_sharing_groups_loads_only_the_group_that_changed(engine, versions, monkeypatch):
    """Fact groups: versions name an unchanged group's adapter alike, so a promotion
    that retrained one group loads one adapter; a version with more groups than
    SEALCHAT_MAX_RESIDENT_ADAPTERS (2 here) is still kept whole."""
    from app.adapters.service import GroupRef

    a, b = versions  # two adapter directories, reused as group adapters
    cat = GroupRef(0, "u3-g0-v1", a.path, ("My cat is called Tom.",))
    v1 = AdapterRef("u3-v1", a.path, (cat, GroupRef(1, "u3-g1-v1", b.path, ("I live in Oslo.",))))
    v2 = AdapterRef("u3-v2", a.path, (cat, GroupRef(1, "u3-g1-v2", a.path, ("I live in Oslo.",))))
    engine.preload(1, None)
    engine.preload(2, None)
    loads = []
    load = engine.host.load
    monkeypatch.setattr(engine.host, "load", lambda name, path: (loads.append(name), load(name, path)))
    engine.preload(3, v1)
    assert loads == ["u3-g0-v1", "u3-g1-v1"]
    engine.preload(3, v2)
    assert loads[2:] == ["u3-g1-v2"], "the unchanged group was not loaded again"
    assert engine.host.names == {"u3-g0-v1", "u3-g1-v2"}, "the replaced group was unloaded"
    v3 = AdapterRef("u3-v3", a.path, (*v2.groups, GroupRef(2, "u3-g2-v3", b.path, ("I play chess.",))))
    engine.preload(3, v3)
    assert engine.host.names == {"u3-g0-v1", "u3-g1-v2", "u3-g2-v3"}, "a version is never evicted in part"
    prompt = with_system_prompt([ChatMessage("user", "What is my cat's name?")])
    assert "".join(engine.stream(3, v3, prompt, 4, adapter="u3-g0-v1")), "a chosen group answers"
    with pytest.raises(ValueError, match="several groups"):
        list(engine.stream(3, v3, prompt, 4))
    engine.preload(3, None)
    assert engine.host.names == set()
