"""API shapes for facts."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.memory.service import MAX_FACT_CHARS, MIN_FACT_CHARS


class FactCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=MIN_FACT_CHARS, max_length=MAX_FACT_CHARS, description="the fact, in the user's words")


class FactOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    text: str
    status: str = Field(description="pending, learning, learned, failed, forgetting, forgotten or superseded")
    stage: str | None
    progress: float = Field(description="0..1 while learning")
    error: str | None
    recall: float | None = Field(
        description=(
            "share of quiz probes answered from weights alone at the latest check "
            "(when learnt, or re-quizzed by a later version)"
        )
    )
    learned_version_id: int | None
    superseded_by_id: int | None = Field(description="the correction that replaced this fact")
    created_at: datetime
    updated_at: datetime
