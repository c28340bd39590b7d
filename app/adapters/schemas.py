"""API shapes for adapter versions."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class AdapterVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    version: int
    name: str
    status: str = Field(
        description="active, inactive, rejected (refused by the gate) or erased (held a forgotten fact)"
    )
    rejection_reason: str | None = Field(description="why the gate refused this version")
    parent_id: int | None
    fact_ids: list[int]
    fact_count: int
    groups: dict | None = Field(
        description="fact groups, one LoRA adapter each: fact ids, sub-directory, the version that trained it"
    )
    metrics: dict
    weights_sha256: str
    size_bytes: int
    created_at: datetime
    promoted_at: datetime | None
