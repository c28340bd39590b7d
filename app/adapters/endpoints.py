"""Admin page (every user's versions, promote, roll back) and the adapters API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from app.accounts import repository as users
from app.accounts.deps import AdminUser, ApiUser, SessionDep
from app.adapters import repository, service
from app.adapters.schemas import AdapterVersionOut
from app.errors import NotFound
from app.memory import repository as facts
from app.params import RowId
from app.policy.endpoints import panel_context
from app.templating import render

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/adapters", tags=["adapters"])


@pages.get("/admin")
def admin_page(request: Request, admin: AdminUser, session: SessionDep):
    rows = []
    for user in users.all_users(session):
        versions = repository.list_for_user(session, user.id)
        unfinished = facts.with_status(session, user.id, facts.UNFINISHED)
        by_id = {f.id: f for f in facts.list_for_user(session, user.id)}
        candidates = repository.candidates_by_version(session, [v.id for v in versions])
        rows.append(
            {"user": user, "versions": versions, "unfinished": unfinished, "facts": by_id, "candidates": candidates}
        )
    return render(request, "admin.html", user=admin, rows=rows, queue=queue_status(), **panel_context(session))


def queue_status() -> dict:
    """Queued consolidation tasks and the workers answering a ping (for the admin)."""
    from app.redis_client import get_redis
    from app.worker import celery_app

    status: dict = {"queued": None, "workers": []}
    try:
        status["queued"] = get_redis().llen("consolidation")
        replies = celery_app.control.ping(timeout=0.5)
        status["workers"] = sorted(name for reply in replies for name in reply)
    except Exception as exc:  # the page still renders; the problem is shown
        status["error"] = f"{type(exc).__name__}: {exc}"
    return status


@pages.post("/admin/versions/{version_id}/promote")
def admin_promote(version_id: RowId, admin: AdminUser, session: SessionDep):
    version = repository.get(session, version_id)
    if version is None:
        raise NotFound(f"adapter version {version_id} not found")
    service.promote(session, users.get(session, version.user_id), version_id)
    return RedirectResponse("/admin", status_code=303)


@pages.post("/admin/users/{user_id}/rollback")
def admin_rollback(user_id: RowId, admin: AdminUser, session: SessionDep):
    user = users.get(session, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    service.rollback(session, user)
    return RedirectResponse("/admin", status_code=303)


@api.get("", response_model=list[AdapterVersionOut], summary="List your adapter versions")
def api_list_versions(user: ApiUser, session: SessionDep):
    """Newest first; the one with status ``active`` serves your requests."""
    return service.list_versions(session, user)
