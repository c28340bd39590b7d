"""The one settings object: environment variables (and an optional ``.env``).

Embedded default: everything lives in ``SEALCHAT_DATA_DIR`` (SQLite file, Redis
socket, converted model, adapters). Setting ``DATABASE_URL`` / ``REDIS_URL``
switches to PostgreSQL and an external Redis with the same code.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_SELF_EDIT_K = 16


class PolicyRound(BaseModel):
    """One self-edit policy round (ReST-EM): small CPU defaults; a GPU deployment raises them."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(4, ge=1, le=16, description="self-edits sampled per passage")
    passages: int = Field(8, ge=1, le=10000, description="SQuAD train passages per offline round")
    eval_inputs: int = Field(6, ge=1, le=1000, description="held-out passages or facts per round")
    inner_steps: int = Field(20, ge=1, le=500, description="LoRA steps per applied self-edit")
    max_online_inputs: int = Field(200, ge=1, le=100000, description="recorded facts per online round")
    time_limit_s: int = Field(14400, ge=60, description="hard limit on one round (seconds)")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    env: Literal["development", "production"] = Field("development", alias="SEALCHAT_ENV")
    data_dir: Path = Field(Path("data"), alias="SEALCHAT_DATA_DIR")
    database_url: str | None = Field(None, alias="DATABASE_URL")
    redis_url: str | None = Field(None, alias="REDIS_URL")
    base_model: str | None = Field(
        None, alias="SEALCHAT_BASE_MODEL", description="model folder or .gguf; empty = bundled SmolLM2"
    )
    secret_key: str | None = Field(None, alias="SEALCHAT_SECRET_KEY")

    # Learning (worker)
    train_steps: int = Field(40, alias="SEALCHAT_TRAIN_STEPS", ge=1, le=2000)
    learning_rate: float = Field(5e-4, alias="SEALCHAT_LEARNING_RATE", gt=0, lt=1)
    self_edit_k: int = Field(
        3,
        alias="SEALCHAT_SELF_EDIT_K",
        ge=1,
        le=MAX_SELF_EDIT_K,
        description="best-of-K self-edit candidates per consolidation",
    )
    max_attempts: int = Field(3, alias="SEALCHAT_MAX_ATTEMPTS", ge=1, le=10)
    task_time_limit_s: int = Field(1800, alias="SEALCHAT_TASK_TIME_LIMIT", ge=60)
    fact_group_size: int = Field(
        5,  # training.memory.plan.DEFAULT_GROUP_SIZE (the benchmarks' default; settings imports no torch)
        alias="SEALCHAT_FACT_GROUP_SIZE",
        ge=0,
        le=100000,
        description="facts per LoRA adapter: a user's facts are split into groups of at most this many, "
        "one adapter each, and a consolidation trains only the group it touches (0: one adapter for all)",
    )
    policy_round: PolicyRound = Field(
        default_factory=PolicyRound,
        alias="SEALCHAT_POLICY_ROUND",
        description='size of one ReST-EM round started from the admin page, as JSON, e.g. {"passages": 32, "k": 8}',
    )

    # Serving (web)
    max_new_tokens: int = Field(200, alias="SEALCHAT_MAX_NEW_TOKENS", ge=1, le=2048)
    max_queued: int = Field(
        8,
        alias="SEALCHAT_MAX_QUEUED",
        ge=1,
        le=64,
        description="replies in flight per web process (generating or waiting); one more is answered 503",
    )
    chat_rate: str = Field(
        "60/minute",
        alias="SEALCHAT_CHAT_RATE",
        description="replies a user may start per window (chat and /v1), e.g. '60/minute'; beyond it 429",
    )
    max_resident_adapters: int = Field(
        64,
        alias="SEALCHAT_MAX_RESIDENT_ADAPTERS",
        ge=1,
        description="LoRA adapters kept loaded (a user's version holds one per fact group)",
    )
    load_model_in_web: bool = Field(True, alias="SEALCHAT_LOAD_MODEL")
    engine: Literal["local", "vllm"] = Field(
        "local",
        alias="SEALCHAT_ENGINE",
        description="local: PyTorch + PEFT in the web process; vllm: a vLLM server with runtime LoRA "
        "(`sealchat run` starts one unless SEALCHAT_VLLM_URL names it)",
    )
    vllm_url: str | None = Field(
        None,
        alias="SEALCHAT_VLLM_URL",
        description="an external vLLM server (OpenAI API, LoRA and runtime LoRA updating enabled), "
        "e.g. http://gpu-1:8000; it must read the adapter folders at the paths this host writes",
    )

    @field_validator("chat_rate")
    @classmethod
    def _rate_parses(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate such as '30/minute': {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env == "production" and not self.secret_key:
            raise ValueError("SEALCHAT_SECRET_KEY must be set when SEALCHAT_ENV=production")
        return self

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            # Plain postgresql:// URLs select psycopg 3, the driver we ship.
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{self.data_path / 'sealchat.db'}"

    @property
    def redis_socket(self) -> Path:
        return self.data_path / "redis.sock"

    @property
    def effective_redis_url(self) -> str:
        """``redis://...`` or ``unix:///path`` (redis-py form)."""
        return self.redis_url or f"unix://{self.redis_socket}"

    @property
    def celery_broker_url(self) -> str:
        url = self.effective_redis_url
        if url.startswith("unix://"):
            return "redis+socket://" + url.removeprefix("unix://")
        return url

    @property
    def adapters_dir(self) -> Path:
        return self.data_path / "adapters"

    @property
    def replay_cache(self) -> Path:
        """Base-model answers to the replay and locality prompts (computed once)."""
        return self.data_path / "replay" / "base-answers.json"

    @property
    def policy_dir(self) -> Path:
        """Self-edit policy versions and their rounds' working files."""
        return self.data_path / "policy"

    @property
    def models_dir(self) -> Path:
        return self.data_path / "models"

    @property
    def session_secret(self) -> str:
        """The configured secret, or one generated once and kept in the data dir."""
        if self.secret_key:
            return self.secret_key
        path = self.data_path / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Created readable by the owner only, never world-readable for a moment;
            # O_EXCL: of two processes starting at once, one writes it and both read it.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_urlsafe(48))
        return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
