"""The worker's base model, loaded once per worker process (consolidations and policy rounds)."""

from __future__ import annotations

from functools import lru_cache

from app.settings import get_settings
from training.adapters import AdapterHost
from training.model import load_model, prepare_base_model
from training.routing.scope import TopicEmbedder


@lru_cache
def worker_host() -> AdapterHost:
    settings = get_settings()
    return AdapterHost(load_model(prepare_base_model(settings.base_model, settings.models_dir)))


@lru_cache
def worker_topics() -> TopicEmbedder:
    """Scope routing's topic check over the worker's base model (for served locality)."""
    return TopicEmbedder.of_host(worker_host())
