"""The worker's models, loaded once per worker process: the base model (consolidations and
policy rounds) and the router (locality as served)."""

from __future__ import annotations

from functools import lru_cache

from app.settings import get_settings
from training.adapters import AdapterHost
from training.embeddings import SentenceEmbedder
from training.model import load_model, prepare_base_model
from training.routing.router import Router, product_router


@lru_cache
def worker_host() -> AdapterHost:
    settings = get_settings()
    return AdapterHost(load_model(prepare_base_model(settings.base_model, settings.models_dir)))


@lru_cache
def worker_router() -> Router:
    """The serving router, to measure locality as served (which general prompts reach an adapter)."""
    return product_router(SentenceEmbedder())
