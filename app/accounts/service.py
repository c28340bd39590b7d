"""Account rules: who may register, how credentials are checked, API keys."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from app.accounts import repository
from app.accounts.security import hash_api_key, hash_password, new_api_key, verify_password
from app.errors import AppError, Unauthorized
from app.models import User

EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,189}\.[^@\s\x00-\x1f\x7f]{1,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256
WRONG_CREDENTIALS = "wrong email or password"
REGISTER_REFUSED = "could not create an account with this email address and password; if you have one, log in"


def validate_email(email: str) -> str:
    email = email.strip()
    if not EMAIL.match(email):
        raise AppError(f"not a valid email address: {email[:80]!r}", 422)
    return email


def create_user(
    session: Session, email: str, password: str | None = None, is_admin: bool | None = None
) -> tuple[User, str]:
    """Create a user; return it with its new API key (shown once, stored hashed).

    The first user of an installation becomes an admin.
    """
    email = validate_email(email)
    if password is not None and not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise AppError(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters", 422)
    if repository.by_email(session, email):
        # The same answer, after the same work (a password hash), as any other refusal:
        # the form does not tell who has an account.
        hash_password(password or "")
        raise AppError(REGISTER_REFUSED, 422)
    if is_admin is None:
        is_admin = repository.count(session) == 0
    key = new_api_key()
    user = repository.add(
        session,
        User(
            email=email,
            password_hash=hash_password(password) if password else None,
            api_key_hash=hash_api_key(key),
            is_admin=is_admin,
            bridge_enabled=True,
        ),
    )
    return user, key


def authenticate(session: Session, email: str, password: str) -> User:
    """The user with these credentials. Unknown emails cost a password check too, so
    the time taken does not tell whether an account exists."""
    email = email.strip()
    user = repository.by_email(session, email) if EMAIL.match(email) else None
    if not verify_password(user.password_hash if user else None, password) or user is None:
        raise Unauthorized(WRONG_CREDENTIALS)
    return user


def user_for_api_key(session: Session, key: str) -> User:
    user = repository.by_api_key_hash(session, hash_api_key(key))
    if user is None:
        raise Unauthorized("invalid API key")
    return user


def rotate_api_key(session: Session, user: User) -> str:
    key = new_api_key()
    user.api_key_hash = hash_api_key(key)
    return key
