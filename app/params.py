"""Request parameter types shared by the routes.

Database ids are INTEGER columns (32-bit in PostgreSQL): a larger number in a path
or form is answered 422, never passed to the driver (which raised OverflowError or
"integer out of range", a 500).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Path, Query

MAX_ID = 2**31 - 1

RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
FormRowId = Annotated[int | None, Form(ge=1, le=MAX_ID)]
QueryRowId = Annotated[int, Query(ge=0, le=MAX_ID)]
