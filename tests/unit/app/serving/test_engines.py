"""Which engine serves, how the vLLM server is started, and the adapter bookkeeping
both engines share (which adapters a swap loads, keeps and unloads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.adapters.service import AdapterRef, GroupRef
from app.serving import vllm_engine
from app.serving.adapters import AdapterRoutes, chosen_adapter
from app.serving.engine import ServingEngine, create_engine
from app.serving.vllm_engine import VLLMEngine, server_command
from app.settings import Settings


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def test_the_setting_chooses_the_engine():
    assert type(create_engine(settings())) is ServingEngine
    engine = create_engine(settings(SEALCHAT_ENGINE="vllm", SEALCHAT_VLLM_URL="http://gpu-1:8000/"))
    assert type(engine) is VLLMEngine and engine.url == "http://gpu-1:8000"
    with pytest.raises(ValueError):
        settings(SEALCHAT_ENGINE="tgi")


def test_the_server_command_enables_runtime_lora_at_the_adapters_rank(monkeypatch, tmp_path):
    python = tmp_path / "python"
    python.touch()
    monkeypatch.setattr(vllm_engine, "VLLM_PYTHON", python)
    command = server_command(Path("/models/smol"), 8123, 2048, 16)
    assert command[:3] == [str(python), "-m", "vllm.entrypoints.openai.api_server"]

    def arg(flag: str) -> str:
        return command[command.index(flag) + 1]

    assert arg("--model") == "/models/smol" and arg("--port") == "8123" and arg("--max-lora-rank") == "16"
    assert arg("--max-model-len") == "2048" and arg("--served-model-name") == "base" and arg("--dtype") == "float32"
    assert "--enable-lora" in command
    assert vllm_engine.SERVER_ENV["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"


def test_without_vllm_installed_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(vllm_engine, "VLLM_PYTHON", tmp_path / "missing")
    with pytest.raises(RuntimeError, match="setup_vllm.sh"):
        server_command(Path("/models/smol"), 8123, 2048, 16)


class Registry(AdapterRoutes):
    """The shared bookkeeping over a plain set of loaded names."""

    def __init__(self, max_resident: int) -> None:
        super().__init__(max_resident)
        self.loaded: set[str] = set()
        self.loads: list[str] = []

    def _load_adapter(self, name: str, path: Path) -> None:
        self.loaded.add(name)
        self.loads.append(name)

    def _unload_adapter(self, name: str) -> None:
        self.loaded.discard(name)

    def _has_adapter(self, name: str) -> bool:
        return name in self.loaded


def version(name: str, *groups: str) -> AdapterRef:
    return AdapterRef(name, Path("/a"), tuple(GroupRef(i, g, Path("/a") / g) for i, g in enumerate(groups)))


def test_a_promotion_loads_only_the_changed_group_and_unloads_the_replaced_one():
    routes = Registry(max_resident=10)
    routes._route_locked(1, version("u1-v1", "u1-g0-v1", "u1-g1-v1"))
    routes._route_locked(1, version("u1-v2", "u1-g0-v1", "u1-g1-v2"))
    assert routes.loads == ["u1-g0-v1", "u1-g1-v1", "u1-g1-v2"]
    assert routes.loaded == {"u1-g0-v1", "u1-g1-v2"}
    routes._route_locked(1, None)
    assert routes.loaded == set() and routes._routes == {}


def test_eviction_keeps_the_routed_version_whole_and_reloads_an_evicted_one():
    routes = Registry(max_resident=2)
    routes._route_locked(1, version("u1-v1", "a"))
    routes._route_locked(2, version("u2-v1", "b"))
    routes._route_locked(3, version("u3-v1", "c", "d"))  # needs 2: both others evicted
    assert routes.loaded == {"c", "d"} and set(routes._routes) == {3}
    routes._route_locked(1, version("u1-v1", "a"))
    assert routes.loads[-1] == "a", "the evicted adapter is loaded again on the next request"


def test_the_answering_adapter_must_belong_to_the_version():
    ref = version("u1-v1", "g0", "g1")
    assert chosen_adapter(ref, "g1", True) == "g1"
    assert chosen_adapter(ref, "g1", False) is None and chosen_adapter(None, None, True) is None
    assert chosen_adapter(version("u1-v1", "g0"), None, True) == "g0"
    with pytest.raises(ValueError, match="several groups"):
        chosen_adapter(ref, None, True)
    with pytest.raises(ValueError):
        chosen_adapter(ref, "u2-g0-v1", True)
