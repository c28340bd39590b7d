"""Admin actions on the self-edit policy (improve, promote, roll back), its live panel, and the user opt-in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from app.accounts.deps import AdminUser, CurrentUser, SessionDep
from app.errors import AppError
from app.params import RowId
from app.policy import repository, service
from app.templating import render

pages = APIRouter(include_in_schema=False)


def panel_context(session) -> dict:
    """What the admin page's policy panel shows."""
    rounds = repository.list_rounds(session)
    return {
        "policy_active": repository.active_version(session),
        "policy_versions": repository.list_versions(session),
        "policy_rounds": list(reversed(rounds)),
        "policy_chart": [r for r in rounds if r.metrics and "eval_after" in r.metrics],
        "policy_busy": any(r.status in ("queued", "running") for r in rounds),
        "sharing_users": len(repository.sharing_users(session)),
        "shared_records": len(service.online_records(session)),
    }


@pages.get("/admin/policy")
def policy_panel(request: Request, admin: AdminUser, session: SessionDep):
    """The panel alone: the admin page polls it while a round runs."""
    return render(request, "_policy.html", user=admin, **panel_context(session))


def _back_to_admin():
    return RedirectResponse("/admin#policy", status_code=303)


@pages.post("/admin/policy/improve")
def improve_policy(
    request: Request, admin: AdminUser, session: SessionDep, source: Annotated[str, Form(max_length=16)] = "online"
):
    from app.policy.tasks import enqueue_round

    try:
        round_ = service.request_round(session, source, admin)
    except AppError as exc:
        ctx = panel_context(session)
        return render(request, "_policy.html", status_code=exc.status_code, user=admin, policy_error=exc.message, **ctx)
    enqueue_round(round_.id)
    if request.headers.get("hx-request"):
        return render(request, "_policy.html", user=admin, **panel_context(session))
    return _back_to_admin()


@pages.post("/admin/policy/versions/{version_id}/promote")
def promote_policy(version_id: RowId, admin: AdminUser, session: SessionDep):
    service.promote(session, version_id)
    return _back_to_admin()


@pages.post("/admin/policy/rollback")
def rollback_policy(admin: AdminUser, session: SessionDep):
    service.rollback(session)
    return _back_to_admin()


@pages.post("/account/self-edit-sharing")
def self_edit_sharing(user: CurrentUser, session: SessionDep, share: Annotated[str | None, Form(max_length=8)] = None):
    service.set_sharing(session, user, share == "on")
    return RedirectResponse("/account#sharing", status_code=303)
