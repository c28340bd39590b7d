"""Chat pages: conversation list, chat pane, streamed replies (SSE), bridge toggle."""

from __future__ import annotations

import json
import threading
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sse_starlette import EventSourceResponse
from starlette.concurrency import iterate_in_threadpool

from app.accounts.deps import CurrentUser, SessionDep
from app.adapters import service as adapters
from app.chat import service
from app.memory import service as memory
from app.serving.deps import EngineDep
from app.settings import get_settings
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


@router.get("/chat/{conversation_id}")
def chat_page(request: Request, conversation_id: int, user: CurrentUser, session: SessionDep):
    conversation = service.get_conversation(session, user, conversation_id)
    return render(
        request,
        "chat.html",
        user=user,
        conversation=conversation,
        conversations=service.list_conversations(session, user),
        pending_facts=memory.bridge_facts(session, user),
        active=adapters.active_ref(session, user),
    )


@router.post("/chat/{conversation_id}/messages")
def post_message(
    conversation_id: int,
    user: CurrentUser,
    session: SessionDep,
    content: Annotated[str, Form(max_length=service.MAX_MESSAGE_CHARS * 2)],
    engine: EngineDep,
    bridge: Annotated[bool, Form()] = False,
):
    """Store the user's message, then stream the reply as SSE events ``token`` and ``done``."""
    conversation = service.get_conversation(session, user, conversation_id)
    message = service.add_user_message(session, conversation, content)
    plan = service.prepare_reply(session, user, service.history_of(conversation), bridge, engine.topical, engine.choose)
    session.commit()
    cancel = threading.Event()
    adapter_name = plan.adapter_name
    user_id, max_tokens = user.id, get_settings().max_new_tokens

    async def events():
        pieces: list[str] = []
        yield {"event": "user", "data": json.dumps({"id": message.id})}
        try:
            stream = service.reply_stream(engine, user_id, plan, max_tokens, cancel=cancel)
            async for piece in iterate_in_threadpool(stream):
                pieces.append(piece)
                yield {"event": "token", "data": json.dumps({"t": piece})}
        finally:
            cancel.set()
            reply_id = service.save_reply(conversation_id, "".join(pieces).strip(), adapter_name, bridge)
        yield {"event": "done", "data": json.dumps({"id": reply_id, "adapter": adapter_name, "scope": plan.scope})}

    return EventSourceResponse(events())


@router.post("/chat/bridge")
def toggle_bridge(user: CurrentUser, session: SessionDep, enabled: Annotated[bool, Form()] = False):
    user.bridge_enabled = enabled
    return HTMLResponse("", status_code=204)


@router.post("/messages/{message_id}/remember")
def remember_message(message_id: int, user: CurrentUser, session: SessionDep):
    message = service.get_message(session, user, message_id)
    fact = memory.teach(session, user, message.content, source_message_id=message.id)
    return HTMLResponse(f'<span class="remembered">Remembering (fact #{fact.id})</span>')
