"""A request's database work is committed before its response leaves the server.

Otherwise a client that follows a redirect at once (a browser after login,
to the first conversation the route just created) can ask for a row that is
not committed yet and get a 404. This is the race that failed a CI run.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

import app.db
from app.accounts.deps import SessionDep


def test_the_request_session_commits_before_the_response_starts(tmp_path, monkeypatch):
    engine = create_engine(f"sqlite:///{tmp_path / 'race.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE rows (id INTEGER PRIMARY KEY)")
    monkeypatch.setattr(app.db, "session_factory", lambda: sessionmaker(engine))

    api = FastAPI()

    @api.post("/rows")
    def add_row(session: SessionDep):
        session.execute(text("INSERT INTO rows (id) VALUES (1)"))
        return RedirectResponse("/rows/1", status_code=303)

    visible_at_start: list[int] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            with engine.connect() as connection:  # another connection, as the next request would use
                visible_at_start.append(connection.exec_driver_sql("SELECT count(*) FROM rows").scalar())

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/rows",
        "raw_path": b"/rows",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(api(scope, receive, send))
    assert visible_at_start == [1], "the row must be committed when the redirect is sent"
