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


def round_chart(rounds: list, width: int = 320, height: int = 120) -> dict:
    """SVG coordinates of the held-out score before and after each policy round (0-100 %)."""

    def y(v: float) -> float:
        return round(height - 10 - v * (height - 20), 1)

    step = width / (len(rounds) - 1) if len(rounds) > 1 else 0
    points = [
        (
            round(i * step if len(rounds) > 1 else width / 2, 1),
            y(r.metrics["eval_before"]),
            y(r.metrics["eval_after"]),
            r.number,
        )
        for i, r in enumerate(rounds)
    ]
    return {
        "before": " ".join(f"{x},{b}" for x, b, _, _ in points),
        "after": " ".join(f"{x},{a}" for x, _, a, _ in points),
        "points": points,
    }


templates.env.globals["sparkline"] = sparkline
templates.env.globals["round_chart"] = round_chart


def csrf_token(request: Request) -> str:
    getter = request.scope.get("csrftoken")
    return getter() if getter else ""


def render(request: Request, name: str, status_code: int = 200, **context: object):
    context.setdefault("user", None)
    return templates.TemplateResponse(
        request, name, {"csrf_token": csrf_token(request), **context}, status_code=status_code
    )
