"""Request dependencies: the database session, the signed-in user, the API user.

Routes read like signatures: ``def page(user: CurrentUser, session: SessionDep)``.
The session dependency is the one place a request commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.accounts import repository, service
from app.db import session_scope
from app.errors import Forbidden, Unauthorized
from app.models import User


def get_session() -> Iterator[Session]:
    """One session per request, committed when the route returns without error.

    ``scope="function"`` commits before the response is sent: with FastAPI's
    default the commit ran after it, so a client following a redirect to what
    the route had just created (a user's first conversation) could get a 404.
    """
    with session_scope() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


class LoginRequired(Exception):
    """Raised for a page that needs a signed-in user; handled as a redirect to /login."""


def current_user(request: Request, session: SessionDep) -> User:
    user_id = request.session.get("uid")
    user = repository.get(session, user_id) if isinstance(user_id, int) else None
    if user is None:
        raise LoginRequired()
    return user


def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_admin:
        raise Forbidden("admins only")
    return user


def api_user(request: Request, session: SessionDep) -> User:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send 'Authorization: Bearer <API key>'")
    return service.user_for_api_key(session, key.strip())


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]
ApiUser = Annotated[User, Depends(api_user)]
