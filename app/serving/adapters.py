"""Which LoRA adapters each user is routed to, and which are loaded: shared by both engines.

A user's active version holds one adapter per fact group. Routing a user to a
version loads the adapters of it not loaded yet (a new version shares its
unchanged groups' adapters with the one it replaces, so a promotion loads only
the group that changed), and unloads the adapters of the replaced version that
no other user's route still needs. Loaded adapters are kept in LRU order and
evicted beyond ``max_resident``, never part of the version being routed.

An engine supplies how an adapter is loaded, unloaded and looked up
(``_load_adapter``, ``_unload_adapter``, ``_has_adapter``); callers hold the
engine's lock around ``_route_locked``.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from pathlib import Path

from app.adapters.service import AdapterRef

log = logging.getLogger(__name__)


class AdapterRoutes(ABC):
    def __init__(self, max_resident: int) -> None:
        self.max_resident = max_resident
        self._routes: dict[int, str] = {}  # user id -> the version they are routed to
        self._adapters: dict[int, tuple[str, ...]] = {}  # user id -> that version's loaded adapters
        self._resident: OrderedDict[str, None] = OrderedDict()  # LRU of loaded adapter names

    # What an engine provides.
    @abstractmethod
    def _load_adapter(self, name: str, path: Path) -> None: ...

    @abstractmethod
    def _unload_adapter(self, name: str) -> None: ...

    @abstractmethod
    def _has_adapter(self, name: str) -> bool: ...

    def _route_locked(self, user_id: int, ref: AdapterRef | None) -> str | None:
        """Point ``user_id`` at ``ref``, loading what it needs; caller holds the lock."""
        if ref is None:
            self._release_locked(user_id)
            return None
        names = tuple(part.name for part in ref.parts)
        if self._routes.get(user_id) == ref.name and all(self._has_adapter(n) for n in names):
            for name in names:
                self._resident.move_to_end(name)
            return ref.name
        started = time.perf_counter()
        loaded = 0
        for part in ref.parts:
            if not self._has_adapter(part.name):
                self._load_adapter(part.name, part.path)
                loaded += 1
            self._resident[part.name] = None
            self._resident.move_to_end(part.name)
        self._release_locked(user_id, keep=names)
        self._routes[user_id], self._adapters[user_id] = ref.name, names
        while len(self._resident) > self.max_resident:
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
        self._unload_adapter(name)
        self._resident.pop(name, None)
        for uid, names in list(self._adapters.items()):
            if name in names:  # that user's version is no longer whole: re-load on their next request
                del self._adapters[uid], self._routes[uid]


def chosen_adapter(ref: AdapterRef | None, adapter: str | None, use_adapter: bool) -> str | None:
    """The adapter of ``ref`` that answers (``adapter``: the router's group), or None for the base model."""
    if not use_adapter or ref is None:
        return None
    name = adapter or ref.sole_adapter
    if name not in {part.name for part in ref.parts}:
        names = [p.name for p in ref.parts]
        raise ValueError(f"adapter {name!r} is not one of {ref.name}'s {names} (several groups: choose one)")
    return name
