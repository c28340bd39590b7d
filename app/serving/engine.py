"""The generation engines: one base model, per-user LoRA adapters, hot-swapped.

Interface (kept small so the engine can change without touching routes or
tasks): ``start()``, ``tokenizer``, ``count_tokens(messages)``,
``preload(user_id, ref)`` and ``stream(user_id, ref, messages, ...)``. ``ref`` is
the user's active version as the database says right now (or ``None`` for the
base model): one LoRA adapter per fact group, each loaded under its own unique
name if needed (``app.serving.adapters``). Which group answers is decided
before, without decoding (``training.routing.router``).

Two engines, chosen by ``SEALCHAT_ENGINE``:

- ``local`` (this module, the embedded default): PyTorch + PEFT in the web
  process. A single lock serialises generation and adapter changes: loading a
  version waits for the in-flight generation to finish, so a swap never breaks a
  running request, and the route for a request is resolved inside the lock, so a
  request never runs on an adapter that was just unloaded.
- ``vllm`` (``app.serving.vllm_engine``): a vLLM server with runtime LoRA loading,
  which batches concurrent requests; the web process loads no model.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from transformers import PreTrainedTokenizerBase

from app.adapters.service import AdapterRef
from app.errors import NOT_SERVING, Unavailable
from app.serving.adapters import AdapterRoutes, chosen_adapter
from app.settings import Settings
from training.adapters import AdapterHost
from training.chat import ChatMessage, encode_prompt, stream_text
from training.model import load_model, prepare_base_model
from training.routing.router import Router

log = logging.getLogger(__name__)


class Engine(Protocol):
    router: Router | None

    def start(self) -> None: ...

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase: ...

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int: ...

    def preload(self, user_id: int, ref: AdapterRef | None) -> None: ...

    def stream(
        self,
        user_id: int,
        ref: AdapterRef | None,
        messages: Sequence[ChatMessage],
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 0.95,
        cancel: threading.Event | None = None,
        use_adapter: bool = True,
        adapter: str | None = None,
    ) -> Iterator[str]: ...


def create_engine(settings: Settings) -> Engine:
    if settings.engine == "vllm":
        from app.serving.vllm_engine import VLLMEngine

        return VLLMEngine(settings)
    return ServingEngine(settings)


class ServingEngine(AdapterRoutes):
    """The local engine: PyTorch + PEFT in this process, one generation at a time."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.max_resident_adapters)
        self.settings = settings
        self._lock = threading.Lock()
        self._host: AdapterHost | None = None
        # Who answers each turn (sentence embeddings, no decoding); set by the web
        # process at start beside the model (``app.web``), None where replies are off.
        self.router: Router | None = None

    def start(self) -> None:
        folder = prepare_base_model(self.settings.base_model, self.settings.models_dir)
        self._host = AdapterHost(load_model(folder))
        log.info("serving %s", folder)

    @property
    def host(self) -> AdapterHost:
        if self._host is None:
            raise Unavailable(NOT_SERVING)
        return self._host

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.host.tokenizer

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Prompt tokens of ``messages`` with the chat template (for the context budget)."""
        return len(encode_prompt(self.tokenizer, messages))

    def _load_adapter(self, name: str, path: Path) -> None:
        self.host.load(name, path)

    def _unload_adapter(self, name: str) -> None:
        self.host.unload(name)

    def _has_adapter(self, name: str) -> bool:
        return name in self.host.names

    def preload(self, user_id: int, ref: AdapterRef | None) -> None:
        """Swap a user's route ahead of their next request (on a promotion message)."""
        with self._lock:
            self._route_locked(user_id, ref)

    def stream(
        self,
        user_id: int,
        ref: AdapterRef | None,
        messages: Sequence[ChatMessage],
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 0.95,
        cancel: threading.Event | None = None,
        use_adapter: bool = True,
        adapter: str | None = None,
    ) -> Iterator[str]:
        """Stream a reply for ``user_id``: one of their version ``ref``'s adapters, or the base model.

        ``adapter``: which of ``ref``'s adapters answers (the router's group); a version of
        one adapter needs none. The lock is taken in the generation thread, for
        exactly as long as generation runs; ``use_adapter=False`` serves the plain
        base model.
        """
        name = chosen_adapter(ref, adapter, use_adapter)

        @contextlib.contextmanager
        def served() -> Iterator[None]:
            with self._lock:
                self._route_locked(user_id, ref)
                with self.host.using(name):
                    yield

        host = self.host
        yield from stream_text(
            host.peft, host.tokenizer, messages, max_new_tokens, temperature, top_p, cancel, around=served
        )
