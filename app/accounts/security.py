"""Password hashing (argon2) and API keys (random, stored as sha256)."""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

_hasher = PasswordHasher()
API_KEY_PREFIX = "sk-seal-"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@lru_cache
def _decoy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; with no hash (unknown account, or one without a password)
    a decoy is verified instead, so the answer takes as long either way."""
    try:
        return _hasher.verify(password_hash or _decoy_hash(), password) and password_hash is not None
    except VerificationError:
        return False


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough (no brute force).
    return hashlib.sha256(key.encode()).hexdigest()
