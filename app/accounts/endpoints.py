"""Pages: register, log in, log out, account (API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from app.accounts import service
from app.accounts.deps import CurrentUser, SessionDep
from app.errors import AppError
from app.memory import suggestions
from app.templating import render

router = APIRouter(include_in_schema=False)

EmailField = Annotated[str, Form(max_length=254)]
PasswordField = Annotated[str, Form(max_length=256)]


@router.get("/login")
def login_page(request: Request):
    return render(request, "login.html")


@router.post("/login")
def login(request: Request, session: SessionDep, email: EmailField, password: PasswordField):
    try:
        user = service.authenticate(session, email, password)
    except AppError as exc:
        return render(request, "login.html", status_code=exc.status_code, error=exc.message, email=email)
    request.session.clear()
    request.session["uid"] = user.id
    return RedirectResponse("/chat", status_code=303)


@router.get("/register")
def register_page(request: Request):
    return render(request, "register.html")


@router.post("/register")
def register(request: Request, session: SessionDep, email: EmailField, password: PasswordField):
    try:
        user, key = service.create_user(session, email, password)
    except AppError as exc:
        return render(request, "register.html", status_code=exc.status_code, error=exc.message, email=email)
    session.commit()
    request.session.clear()
    request.session["uid"] = user.id
    request.session["new_api_key"] = key
    return RedirectResponse("/chat", status_code=303)


@router.post("/logout")
def logout(request: Request):
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/account")
def account_page(request: Request, user: CurrentUser):
    return render(request, "account.html", user=user, new_api_key=request.session.pop("new_api_key", None))


@router.post("/account/api-key")
def new_api_key(request: Request, user: CurrentUser, session: SessionDep):
    request.session["new_api_key"] = service.rotate_api_key(session, user)
    return RedirectResponse("/account", status_code=303)


@router.post("/account/memory-suggestions")
def memory_suggestions(
    user: CurrentUser, session: SessionDep, suggest: Annotated[str | None, Form(max_length=8)] = None
):
    """Turn the chat's "Remember this?" offers on or off."""
    suggestions.set_enabled(user, suggest == "on")
    return RedirectResponse("/account#suggestions", status_code=303)
