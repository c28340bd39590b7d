"""The generation engine: one base model, per-user LoRA adapters, hot-swapped.

Interface (kept small so the engine can change without touching routes or
tasks): ``start()``, ``preload(user_id, ref)``, ``stream(user_id, ref, messages)``,
and ``topical(message, facts)`` for scope routing (training/scope.py).
``ref`` is the user's active adapter as the database says right now (or ``None``
for the base model); the engine loads it under its own unique name if needed,
routes the user to it and unloads the version it replaced.

This implementation is PyTorch + PEFT. A single lock serialises generation and
adapter changes: loading a version waits for the in-flight generation to finish,
so a swap never breaks a running request, and the route for a request is resolved
inside the lock, so a request never runs on an adapter that was just unloaded.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence

from app.adapters.service import AdapterRef
from app.settings import Settings
from training.adapters import AdapterHost
from training.chat import ChatMessage, stream_text
from training.model import load_model, prepare_base_model
from training.scope import TopicEmbedder

log = logging.getLogger(__name__)


class ServingEngine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._host: AdapterHost | None = None
        self._routes: dict[int, str] = {}  # user id -> loaded adapter name
        self._resident: OrderedDict[str, None] = OrderedDict()  # LRU of loaded names
        self._topics: TopicEmbedder | None = None

    def start(self) -> None:
        folder = prepare_base_model(self.settings.base_model, self.settings.models_dir)
        self._host = AdapterHost(load_model(folder))
        log.info("serving %s", folder)

    @property
    def host(self) -> AdapterHost:
        if self._host is None:
            raise RuntimeError("serving engine not started")
        return self._host

    def _route_locked(self, user_id: int, ref: AdapterRef | None) -> str | None:
        """Point ``user_id`` at ``ref`` (loading it if needed); caller holds the lock."""
        current = self._routes.get(user_id)
        if ref is None:
            if current:
                self._drop_locked(user_id, current)
            return None
        if current == ref.name and ref.name in self.host.names:
            self._resident.move_to_end(ref.name)
            return ref.name
        started = time.perf_counter()
        self.host.load(ref.name, ref.path)
        self._routes[user_id] = ref.name
        self._resident[ref.name] = None
        if current and current != ref.name:
            self._drop_locked(user_id, current, reroute=False)
        while len(self._resident) > self.settings.max_resident_adapters:
            evicted, _ = self._resident.popitem(last=False)
            self.host.unload(evicted)
            for uid, name in list(self._routes.items()):
                if name == evicted:
                    del self._routes[uid]
        log.info("user %s now served by %s (%.2fs)", user_id, ref.name, time.perf_counter() - started)
        return ref.name

    def _drop_locked(self, user_id: int, name: str, reroute: bool = True) -> None:
        self.host.unload(name)
        self._resident.pop(name, None)
        if reroute:
            self._routes.pop(user_id, None)

    def preload(self, user_id: int, ref: AdapterRef | None) -> None:
        """Swap a user's route ahead of their next request (on a promotion message)."""
        with self._lock:
            self._route_locked(user_id, ref)

    def topical(self, message: str, facts: Sequence[str]) -> bool:
        """Scope routing's topic check: is ``message`` nearer to one of ``facts`` than
        to any general request? On the base model, under the lock (one short forward
        pass per text not seen before; the first call also embeds the 60 replay prompts)."""
        with self._lock:
            if self._topics is None:
                self._topics = TopicEmbedder.of_host(self.host)
            return self._topics.nearer_to_facts(message, facts)

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
    ) -> Iterator[str]:
        """Stream a reply for ``user_id``: their adapter ``ref``, or the base model.

        The lock is taken in the generation thread, for exactly as long as
        generation runs; ``use_adapter=False`` serves the plain base model.
        """

        @contextlib.contextmanager
        def served() -> Iterator[None]:
            with self._lock:
                name = self._route_locked(user_id, ref)
                with self.host.using(name if use_adapter else None):
                    yield

        host = self.host
        yield from stream_text(
            host.peft, host.tokenizer, messages, max_new_tokens, temperature, top_p, cancel, around=served
        )
