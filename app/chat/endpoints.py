"""Chat pages: conversation list (search, rename, delete), chat pane, streamed
replies (SSE: send, regenerate), the bridge toggle, and "Remember this"."""

from __future__ import annotations

import json
import threading
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse
from starlette.concurrency import iterate_in_threadpool

from app.accounts.deps import CurrentUser, SessionDep
from app.adapters import service as adapters
from app.chat import service
from app.memory import service as memory
from app.memory.suggestions import DetectorDep, offer_for
from app.models import Conversation, User
from app.params import FormRowId, QueryRowId, RowId
from app.serving.admission import REPLY_TIMEOUT_S, Admitted, PageUserWithinRate, Ticket
from app.serving.deps import EngineDep
from app.serving.engine import Engine
from app.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(user: CurrentUser):
    return RedirectResponse("/chat", status_code=303)


@router.get("/chat")
def chat_latest(user: CurrentUser, session: SessionDep):
    """Open the most recent conversation (or a first one)."""
    conversations = service.list_conversations(session, user)
    conversation = conversations[0] if conversations else service.new_conversation(session, user)
    return RedirectResponse(f"/chat/{conversation.id}", status_code=303)


@router.post("/chat/new")
def chat_new(user: CurrentUser, session: SessionDep):
    """Start a conversation, reusing the latest one if it is still empty."""
    conversations = service.list_conversations(session, user)
    if conversations and not conversations[0].messages:
        conversation = conversations[0]
    else:
        conversation = service.new_conversation(session, user)
    return RedirectResponse(f"/chat/{conversation.id}", status_code=303)


@router.get("/chat/conversations")
def conversation_list(request: Request, user: CurrentUser, session: SessionDep, q: str = "", current: QueryRowId = 0):
    """The sidebar's list, filtered by ``q`` (swapped in by htmx as the user types)."""
    return render(
        request,
        "_conversations.html",
        conversations=service.list_conversations(session, user, q[: service.MAX_SEARCH_CHARS]),
        current_id=current,
        query=q,
    )


@router.get("/chat/{conversation_id}")
def chat_page(request: Request, conversation_id: RowId, user: CurrentUser, session: SessionDep):
    conversation = service.get_conversation(session, user, conversation_id)
    return render(
        request,
        "chat.html",
        user=user,
        conversation=conversation,
        conversations=service.list_conversations(session, user),
        current_id=conversation.id,
        pending_facts=memory.bridge_facts(session, user),
        active=adapters.active_ref(session, user),
    )


@router.post("/chat/{conversation_id}/rename")
def rename(
    conversation_id: RowId,
    user: CurrentUser,
    session: SessionDep,
    title: Annotated[str, Form(max_length=service.MAX_TITLE_CHARS * 2)],
):
    service.rename_conversation(session, user, conversation_id, title)
    return RedirectResponse(f"/chat/{conversation_id}", status_code=303)


@router.post("/chat/{conversation_id}/delete")
def delete(conversation_id: RowId, user: CurrentUser, session: SessionDep):
    service.delete_conversation(session, user, conversation_id)
    return RedirectResponse("/chat", status_code=303)


def _stream_reply(
    session: Session,
    user: User,
    conversation: Conversation,
    engine: Engine,
    bridge: bool,
    ticket: Ticket,
    first: dict | None = None,
) -> EventSourceResponse:
    """Plan the reply to the conversation's last user turn, commit, then stream it as
    SSE events: ``first`` (if given), ``token`` pieces and ``done``. A client that goes
    away (the Stop button) cancels the generation; what was generated is kept. The
    stream holds the request's queue slot (``ticket``) until it ends, and is cut off
    after ``REPLY_TIMEOUT_S``."""
    max_tokens = service.reply_tokens(None)
    history = service.history_of(conversation)
    plan = service.prepare_reply(session, user, history, bridge, engine.router, engine.count_tokens, max_tokens)
    session.commit()
    cancel = threading.Event()
    adapter_name = plan.adapter_name
    user_id, conversation_id = user.id, conversation.id

    async def events():
        pieces: list[str] = []
        timeout = threading.Timer(REPLY_TIMEOUT_S, cancel.set)
        timeout.start()
        if first is not None:
            yield first
        try:
            stream = service.reply_stream(engine, user_id, plan, max_tokens, cancel=cancel)
            async for piece in iterate_in_threadpool(stream):
                pieces.append(piece)
                yield {"event": "token", "data": json.dumps({"t": piece})}
        finally:
            cancel.set()
            timeout.cancel()
            ticket.release()
            reply_id = service.save_reply(conversation_id, "".join(pieces).strip(), adapter_name, bridge)
        yield {"event": "done", "data": json.dumps({"id": reply_id, "adapter": adapter_name, "scope": plan.scope})}

    return EventSourceResponse(events())


@router.post("/chat/{conversation_id}/messages")
def post_message(
    ticket: Admitted,
    conversation_id: RowId,
    user: PageUserWithinRate,
    session: SessionDep,
    content: Annotated[str, Form(max_length=service.MAX_MESSAGE_CHARS * 2)],
    engine: EngineDep,
    detector: DetectorDep,
    bridge: Annotated[bool, Form()] = False,
):
    """Store the user's message, then stream the reply as SSE events ``user`` (the
    stored message, with a "Remember this?" offer when it states something about the
    user), ``token`` and ``done``."""
    conversation = service.get_conversation(session, user, conversation_id)
    message = service.add_user_message(session, conversation, content)
    offer = offer_for(session, user, detector, message.content)
    first = {"id": message.id, "offer": offer.as_json() if offer else None}
    user_event = {"event": "user", "data": json.dumps(first)}
    return _stream_reply(session, user, conversation, engine, bridge, ticket, user_event)


@router.post("/chat/{conversation_id}/regenerate")
def regenerate(
    ticket: Admitted,
    conversation_id: RowId,
    user: PageUserWithinRate,
    session: SessionDep,
    engine: EngineDep,
    bridge: Annotated[bool, Form()] = False,
):
    """Replace the conversation's last reply with a new one, streamed like a reply to a message."""
    conversation = service.get_conversation(session, user, conversation_id)
    service.drop_last_reply(session, conversation)
    return _stream_reply(session, user, conversation, engine, bridge, ticket)


@router.post("/chat/bridge")
def toggle_bridge(user: CurrentUser, session: SessionDep, enabled: Annotated[bool, Form()] = False):
    user.bridge_enabled = enabled
    return HTMLResponse("", status_code=204)


@router.post("/messages/{message_id}/remember")
def remember_message(
    message_id: RowId,
    user: CurrentUser,
    session: SessionDep,
    replaces: FormRowId = None,
):
    """Teach the message as a fact; ``replaces``: as a correction of that fact."""
    message = service.get_message(session, user, message_id)
    if replaces is not None:
        fact = memory.edit(session, user, replaces, message.content)
        label = f"Updated memory (fact #{fact.id} replaces #{replaces})"
    else:
        fact = memory.teach(session, user, message.content, source_message_id=message.id)
        label = f"Remembering (fact #{fact.id})"
    return HTMLResponse(f'<span class="remembered" role="status">{label}</span>')
