"""Hot-swap in the serving engine, on the real model: a swap during a streamed reply
neither breaks the reply nor leaves the old version loaded, and users stay apart."""

from __future__ import annotations

import threading

import pytest

from app.adapters.service import AdapterRef
from app.serving.engine import ServingEngine
from app.settings import Settings
from training.adapters import AdapterHost
from training.chat import ChatMessage, generate_batch_scored, with_system_prompt
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
        # Untrained adapters: routing by words is tested; the floor and the grounding check have their own tests.
        SEALCHAT_ROUTING_FLOOR="off",
        SEALCHAT_GROUNDING_CHECK="false",
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


def test_topic_check_routes_fact_questions_and_keeps_general_my_requests_on_the_base_model(engine):
    """Scope routing with the engine's topic check, on the 105 bundled facts and
    their benchmark questions (worded differently from the facts)."""
    import json
    from pathlib import Path

    from training.replay import PERSONAL_LOCALITY_PROMPTS
    from training.routing.scope import Scope

    rows = [json.loads(line) for line in Path("training/data/personal_facts.jsonl").read_text().splitlines()]
    facts = [row["fact"] for row in rows]
    words_only, with_topics = Scope(facts), Scope(facts, engine.topical)
    # A paraphrase with no shared word: only the topic check finds its fact.
    mother = ["My mother was born in Naples.", "My cat is called Biscotti."]
    assert not Scope(mother).message("Where does my mom come from?")
    assert Scope(mother, engine.topical).message("Where does my mom come from?")
    assert not Scope(mother, engine.topical).message("What is a healthy snack for my lunch?")
    questions = [q["q"] for row in rows for q in row["questions"]]
    routed = sum(with_topics.message(q) for q in questions) / len(questions)
    assert routed > sum(words_only.message(q) for q in questions) / len(questions)
    assert routed >= 0.95
    # The held-out "my ..." requests reach the adapter only on a topic of a fact.
    assert sum(with_topics.message(p) for p in PERSONAL_LOCALITY_PROMPTS) <= 3


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
    assert engine.choose(3, v3, "What is my cat's name?") == "u3-g0-v1", "by words: no adapter runs"
    assert engine.choose(3, v3, "Where did I grow up?") in {p.name for p in v3.parts}
    engine.preload(3, None)
    assert engine.host.names == set()


def test_an_adapter_below_the_routing_floor_leaves_the_question_to_the_base_model(engine, versions, monkeypatch):
    """The floor compares the answering adapter's confidence in its first words
    (what group routing scores) with ``routing_floor``: here an untrained adapter,
    whose confidence is the base model's own."""
    v1, _ = versions
    question = "What is my passport number?"
    prompt = with_system_prompt([ChatMessage("user", question)])
    engine.preload(1, v1)
    with engine.host.using("u1-v1"):
        ((_, score),) = generate_batch_scored(
            engine.host.peft, engine.host.tokenizer, [prompt], engine.routing_tokens, engine.routing_tokens
        )
    assert score < 0
    monkeypatch.setattr(engine.settings, "routing_floor", score - 0.01)
    assert engine.choose(1, v1, question) == "u1-v1"
    monkeypatch.setattr(engine.settings, "routing_floor", score + 0.01)
    assert engine.choose(1, v1, question) is None, "unsure: no adapter answers"
    monkeypatch.setattr(engine.settings, "routing_floor", None)
    assert engine.choose(1, v1, question) == "u1-v1"


def test_a_reply_no_fact_grounds_leaves_the_question_unanswered(engine, versions, monkeypatch):
    """The grounding check reads the first sentence of the answering adapter's reply
    (an untrained adapter: the base model's own) against the version's fact texts."""
    from app.adapters.service import GroupRef
    from training.routing.groups import GROUNDING_TOKENS, grounded

    v1, _ = versions
    question = "What is my passport number?"
    prompt = with_system_prompt([ChatMessage("user", question)])
    engine.preload(1, v1)
    with engine.host.using("u1-v1"):
        ((reply, _),) = generate_batch_scored(engine.host.peft, engine.host.tokenizer, [prompt], GROUNDING_TOKENS, 4)
    unrelated = AdapterRef("u1-v1", v1.path, (GroupRef(0, "u1-v1", v1.path, ("My cat is called Tom.",)),))
    saying_it = AdapterRef("u1-v1", v1.path, (GroupRef(0, "u1-v1", v1.path, (reply,)),))
    assert not grounded(reply, question, unrelated.facts) and grounded(reply, question, saying_it.facts), reply
    monkeypatch.setattr(engine.settings, "grounding_check", True)
    assert engine.choose(1, unrelated, question) is None, f"not grounded: {reply!r}"
    assert engine.choose(1, saying_it, question) == "u1-v1", "what the facts say is answered"
    monkeypatch.setattr(engine.settings, "grounding_check", False)
    assert engine.choose(1, unrelated, question) == "u1-v1"
