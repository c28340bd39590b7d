"""Memory page (teach, progress, correct, forget) and the JSON API for facts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from app.accounts.deps import ApiUser, CurrentUser, SessionDep
from app.adapters import service as adapters
from app.errors import AppError
from app.memory import service
from app.memory.schemas import FactCreate, FactOut
from app.models import FactStatus, VersionStatus
from app.params import RowId
from app.templating import render

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/facts", tags=["facts"])


def _facts_context(session, user) -> dict:
    facts = service.list_facts(session, user)
    busy = any(f.status in (FactStatus.PENDING, FactStatus.LEARNING, FactStatus.FORGETTING) for f in facts)
    versions = adapters.list_versions(session, user)
    # A refusal newer than the live version is news for the user: say why.
    refused = next((v for v in versions if v.status == VersionStatus.REJECTED), None)
    live = next((v for v in versions if v.status == VersionStatus.ACTIVE), None)
    if refused is not None and live is not None and live.version > refused.version:
        refused = None
    current = [f for f in facts if f.status != FactStatus.SUPERSEDED]
    history = [f for f in facts if f.status == FactStatus.SUPERSEDED]
    by_id = {f.id: f for f in facts}
    return {
        "facts": current,
        "history": history,
        "by_id": by_id,
        "busy": busy,
        "versions": versions[:5],
        "refused": refused,
    }


def _page_error(request: Request, session, user, exc: AppError, text: str | None = None):
    """The memory page again (or, for htmx, the fact list) with the error and what the user typed."""
    context = _facts_context(session, user)
    if request.headers.get("hx-request"):
        return render(request, "_facts.html", status_code=exc.status_code, user=user, error=exc.message, **context)
    return render(
        request, "memory.html", status_code=exc.status_code, user=user, error=exc.message, text=text, **context
    )


def _updated_facts(request: Request, session, user):
    """After a change: the fact list for htmx, a redirect for a plain form post."""
    if request.headers.get("hx-request"):
        return render(request, "_facts.html", user=user, **_facts_context(session, user))
    return RedirectResponse("/memory", status_code=303)


@pages.get("/memory")
def memory_page(request: Request, user: CurrentUser, session: SessionDep):
    return render(request, "memory.html", user=user, **_facts_context(session, user))


@pages.get("/memory/facts")
def memory_facts_partial(request: Request, user: CurrentUser, session: SessionDep):
    return render(request, "_facts.html", user=user, **_facts_context(session, user))


@pages.post("/memory")
def memory_teach(request: Request, user: CurrentUser, session: SessionDep, text: Annotated[str, Form(max_length=4000)]):
    try:
        service.teach(session, user, text)
    except AppError as exc:
        return _page_error(request, session, user, exc, text=text)
    return RedirectResponse("/memory", status_code=303)


@pages.post("/memory/{fact_id}/forget")
def memory_forget(request: Request, fact_id: RowId, user: CurrentUser, session: SessionDep):
    service.forget(session, user, fact_id)
    return _updated_facts(request, session, user)


@pages.post("/memory/{fact_id}/edit")
def memory_edit(
    request: Request,
    fact_id: RowId,
    user: CurrentUser,
    session: SessionDep,
    text: Annotated[str, Form(max_length=4000)],
):
    """A correction: the edited text becomes a new fact that supersedes this one."""
    try:
        service.edit(session, user, fact_id, text)
    except AppError as exc:
        session.rollback()
        return _page_error(request, session, user, exc)
    return _updated_facts(request, session, user)


@api.post("", status_code=201, response_model=FactOut, summary="Teach a fact")
def api_create_fact(body: FactCreate, user: ApiUser, session: SessionDep):
    """Store the fact at once (status ``pending``) and enqueue learning it into your adapter."""
    return service.teach(session, user, body.text)


@api.get("", response_model=list[FactOut], summary="List your facts")
def api_list_facts(user: ApiUser, session: SessionDep):
    return service.list_facts(session, user)


@api.get("/{fact_id}", response_model=FactOut, summary="Get one fact")
def api_get_fact(fact_id: RowId, user: ApiUser, session: SessionDep):
    return service.get(session, user, fact_id)


@api.put("/{fact_id}", response_model=FactOut, status_code=201, summary="Correct a fact")
def api_edit_fact(fact_id: RowId, body: FactCreate, user: ApiUser, session: SessionDep):
    """The new text becomes a new fact (returned) that supersedes this one; the old one stays in history."""
    return service.edit(session, user, fact_id, body.text)


@api.delete("/{fact_id}", response_model=FactOut, summary="Forget a fact")
def api_forget_fact(fact_id: RowId, user: ApiUser, session: SessionDep, response: Response):
    """A fact already in the weights becomes ``forgetting`` until a version without it is live."""
    response.status_code = 202
    return service.forget(session, user, fact_id)
