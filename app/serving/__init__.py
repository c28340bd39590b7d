"""Serving: the generation engine with per-user adapters, and adapter hot-swap."""
