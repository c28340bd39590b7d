"""Jinja2 templates (top-level ``templates/``) with the CSRF token and current user."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request
from fastapi.templating import Jinja2Templates

ROOT = Path(__file__).resolve().parents[1]
templates = Jinja2Templates(directory=str(ROOT / "templates"))


def sparkline(values: list[float], width: int = 160, height: int = 36) -> str:
    """SVG polyline points for a loss curve (drawn by the admin template)."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}" for i, v in enumerate(values))


templates.env.globals["sparkline"] = sparkline


def csrf_token(request: Request) -> str:
    getter = request.scope.get("csrftoken")
    return getter() if getter else ""


def render(request: Request, name: str, status_code: int = 200, **context: object):
    context.setdefault("user", None)
    return templates.TemplateResponse(
        request, name, {"csrf_token": csrf_token(request), **context}, status_code=status_code
    )
