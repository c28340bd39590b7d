"""Pages: register, log in, log out, account (API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from starsessions import regenerate_session_id

from app.accounts import service, throttle
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


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _refused(request: Request, page: str, exc: AppError, email: str):
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, throttle.TooManyAttempts) else None
    response = render(request, page, status_code=exc.status_code, error=exc.message, email=email)
    if headers:
        response.headers.update(headers)
    return response


def _sign_in(request: Request, user_id: int) -> None:
    """A new session id for the signed-in user (a session fixed before login is useless)."""
    request.session.clear()
    regenerate_session_id(request)
    request.session["uid"] = user_id


@router.post("/login")
def login(request: Request, session: SessionDep, email: EmailField, password: PasswordField):
    address = _client_address(request)
    try:
        throttle.login_by_address.check(address)
        throttle.failed_logins_by_account.check(email)
        throttle.login_by_address.hit(address)
        try:
            user = service.authenticate(session, email, password)
        except AppError:
            throttle.failed_logins_by_account.hit(email)
            raise
    except AppError as exc:
        return _refused(request, "login.html", exc, email)
    throttle.failed_logins_by_account.clear(email)
    _sign_in(request, user.id)
    return RedirectResponse("/chat", status_code=303)


@router.get("/register")
def register_page(request: Request):
    return render(request, "register.html")


@router.post("/register")
def register(request: Request, session: SessionDep, email: EmailField, password: PasswordField):
    try:
        throttle.registrations_by_address.check(_client_address(request))
        throttle.registrations_by_address.hit(_client_address(request))
        user, key = service.create_user(session, email, password)
    except AppError as exc:
        return _refused(request, "register.html", exc, email)
    session.commit()
    _sign_in(request, user.id)
    # Shown once on the account page; kept in the server-side session until then, never in the cookie.
    request.session["new_api_key"] = key
    return RedirectResponse("/chat", status_code=303)


@router.post("/logout")
def logout(request: Request):
    # An empty session is deleted from the store: a copy of the cookie no longer works.
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
