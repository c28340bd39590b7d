"""The generation engine: one base model, per-user LoRA adapters, hot-swapped.

Interface (kept small so the engine can change without touching routes or
tasks): ``start()``, ``preload(user_id, ref)`` and ``stream(user_id, ref,
messages, adapter=...)``. ``ref`` is the user's active version as the database
says right now (or ``None`` for the base model): one LoRA adapter per fact group,
each loaded under its own unique name if needed; the engine routes the user to it
and unloads the adapters of the version it replaced that the new one does not
share. Which group answers is decided before, without decoding
(``training.routing.router``).

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
from app.errors import NOT_SERVING, Unavailable
from app.settings import Settings
from training.adapters import AdapterHost
from training.chat import ChatMessage, encode_prompt, stream_text
from training.model import load_model, prepare_base_model
from training.routing.router import Router

log = logging.getLogger(__name__)


class ServingEngine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._host: AdapterHost | None = None
        self._routes: dict[int, str] = {}  # user id -> the version they are routed to
        self._adapters: dict[int, tuple[str, ...]] = {}  # user id -> that version's loaded adapters
        self._resident: OrderedDict[str, None] = OrderedDict()  # LRU of loaded adapter names
        # Who answers each turn (sentence embeddings, no decoding); set by the web
        # process at start beside the model (``app.web``), None where replies are off.
        self.router: Router | None = None

    def start(self) -> None:
        folder = prepare_base_model(self.settings.base_model, self.settings.models_dir)
        self._host = AdapterHost(load_model(folder))
        log.info("serving %s", folder)

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Prompt tokens of ``messages`` with the chat template (for the context budget)."""
        return len(encode_prompt(self.host.tokenizer, messages))

    @property
    def host(self) -> AdapterHost:
        if self._host is None:
            raise Unavailable(NOT_SERVING)
        return self._host

    def _route_locked(self, user_id: int, ref: AdapterRef | None) -> str | None:
        """Point ``user_id`` at ``ref``, loading the adapters of it not loaded yet
        (a new version shares its unchanged groups' adapters with the one it
        replaces, so a promotion loads only the group that changed); caller holds the lock."""
        if ref is None:
            self._release_locked(user_id)
            return None
        names = tuple(part.name for part in ref.parts)
        if self._routes.get(user_id) == ref.name and all(n in self.host.names for n in names):
            for name in names:
                self._resident.move_to_end(name)
            return ref.name
        started = time.perf_counter()
        loaded = 0
        for part in ref.parts:
            if part.name not in self.host.names:
                self.host.load(part.name, part.path)
                loaded += 1
            self._resident[part.name] = None
            self._resident.move_to_end(part.name)
        self._release_locked(user_id, keep=names)
        self._routes[user_id], self._adapters[user_id] = ref.name, names
        while len(self._resident) > self.settings.max_resident_adapters:
            evicted = next((n for n in self._resident if n not in names), None)
            if evicted is None:
                break  # this one version needs more than the limit: keep it whole
            self._unload_locked(evicted)
        log.info(
            "user %s now served by %s (%d of %d adapters loaded, %.2fs)",
            user_id,
            ref.name,
            loaded,
            len(names),
            time.perf_counter() - started,
        )
        return ref.name

    def _release_locked(self, user_id: int, keep: tuple[str, ...] = ()) -> None:
        """Drop ``user_id``'s route; unload its adapters that no route uses (but ``keep``)."""
        old = self._adapters.pop(user_id, ())
        self._routes.pop(user_id, None)
        in_use = {n for names in self._adapters.values() for n in names} | set(keep)
        for name in old:
            if name not in in_use:
                self._unload_locked(name)

    def _unload_locked(self, name: str) -> None:
        self.host.unload(name)
        self._resident.pop(name, None)
        for uid, names in list(self._adapters.items()):
            if name in names:  # that user's version is no longer whole: re-load on their next request
                del self._adapters[uid], self._routes[uid]

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
        name = None
        if use_adapter and ref is not None:
            name = adapter or ref.sole_adapter
            if name not in {part.name for part in ref.parts}:
                names = [p.name for p in ref.parts]
                raise ValueError(f"adapter {name!r} is not one of {ref.name}'s {names} (several groups: choose one)")

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
