"""The serving engine as a request dependency (it lives on ``app.state``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.serving.engine import ServingEngine


def engine_of(request: Request) -> ServingEngine:
    return request.app.state.engine


EngineDep = Annotated[ServingEngine, Depends(engine_of)]
