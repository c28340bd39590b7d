"""The one domain exception type; a handler turns it into JSON or an HTML error page."""

from __future__ import annotations


class AppError(Exception):
    """A user-visible error with an HTTP status code."""

    status_code = 400

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class NotFound(AppError):
    status_code = 404


class Forbidden(AppError):
    status_code = 403


class Unauthorized(AppError):
    status_code = 401


class Unavailable(AppError):
    status_code = 503


# SEALCHAT_LOAD_MODEL off: a web process that serves pages and the API, never a reply.
NOT_SERVING = "this server does not generate replies (SEALCHAT_LOAD_MODEL is off)"
