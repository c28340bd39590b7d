"""An OpenAI-compatible API: /v1/models and /v1/chat/completions with per-user adapters."""
