"""/v1/models and /v1/chat/completions (streaming and not), bearer-authenticated."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from app.accounts.deps import ApiUser, SessionDep
from app.chat import service as chat
from app.errors import AppError
from app.openai_api.schemas import (
    MODELS,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    ModelCard,
    ModelList,
    OutputMessage,
    Usage,
)
from app.serving.admission import REPLY_TIMEOUT_S, Admitted, ApiUserWithinRate
from app.serving.deps import EngineDep
from training.chat import ChatMessage, encode_prompt

router = APIRouter(prefix="/v1", tags=["openai"])
STARTED = int(time.time())


@router.get("/models", response_model=ModelList, summary="List models")
def list_models(user: ApiUser) -> ModelList:
    return ModelList(
        data=[ModelCard(id=name, created=STARTED, owned_by="sealchat", description=d) for name, d in MODELS.items()]
    )


async def _cancel_on_disconnect(request: Request, cancel: threading.Event) -> None:
    while not cancel.is_set():
        if await request.is_disconnected():
            cancel.set()
            return
        await asyncio.sleep(0.25)


@router.post("/chat/completions", response_model=ChatCompletion, summary="Chat completion (OpenAI-compatible)")
async def chat_completions(
    ticket: Admitted,
    request: Request,
    body: ChatCompletionRequest,
    user: ApiUserWithinRate,
    session: SessionDep,
    engine: EngineDep,
):
    """Answer with your adapter (``model: seal``) or the base model (``model: base``).

    With ``model: seal``, a message that is not about your facts is answered by the
    base model, so your adapter cannot change general answers; ``system_fingerprint``
    names the adapter only when it answered. A question about you that nothing you
    taught answers gets "I don't know that about you yet ...", unless the bridge puts
    facts not yet learnt in the prompt (the base model reads them). Who answers is
    decided from sentence embeddings before the first token (``training.routing.router``).

    Extra field ``bridge`` (default true): set it to false to hear what the weights
    alone know (with the openai client: ``extra_body={"bridge": False}``).

    When the server is busy (every slot of its queue taken) the answer is 503, and
    past your rate (``SEALCHAT_CHAT_RATE``) 429, both at once and with ``Retry-After``.
    """
    history = [ChatMessage("system" if m.role == "developer" else m.role, m.content) for m in body.messages]
    max_tokens = chat.reply_tokens(body.max_completion_tokens or body.max_tokens)
    plan = await run_in_threadpool(
        chat.prepare_reply,
        session,
        user,
        history,
        body.bridge,
        engine.router,
        engine.count_tokens,
        max_tokens,
    )
    # Nothing below needs the database: its connection goes back to the pool before
    # generating (a long generation must not hold one).
    session.commit()
    session.close()
    prompt = plan.prompt
    fingerprint = plan.adapter_name if body.model == "seal" and plan.use_adapter else None
    temperature, top_p = body.temperature or 0.0, body.top_p or 0.95
    cancel = threading.Event()
    timeout = threading.Timer(REPLY_TIMEOUT_S, cancel.set)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    stream = chat.reply_stream(engine, user.id, plan, max_tokens, temperature, top_p, cancel, body.model == "seal")
    tokenizer = engine.tokenizer

    def finish_reason(text: str) -> str:
        return "length" if len(tokenizer.encode(text, add_special_tokens=False)) >= max_tokens else "stop"

    if not body.stream:
        # A client that goes away stops the generation, as a streaming one does.
        watcher = asyncio.create_task(_cancel_on_disconnect(request, cancel))
        timeout.start()
        try:
            text = "".join([piece async for piece in iterate_in_threadpool(stream)]).strip()
        finally:
            cancel.set()
            timeout.cancel()
            watcher.cancel()
            ticket.release()
        prompt_tokens = len(encode_prompt(tokenizer, prompt))
        completion_tokens = len(tokenizer.encode(text, add_special_tokens=False))
        return ChatCompletion(
            id=completion_id,
            created=created,
            model=body.model,
            choices=[Choice(message=OutputMessage(content=text), finish_reason=finish_reason(text))],
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
            system_fingerprint=fingerprint,
        )

    def chunk(delta: dict, reason: str | None) -> str:
        return json.dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body.model,
                "system_fingerprint": fingerprint,
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
            }
        )

    async def events():
        pieces: list[str] = []
        timeout.start()
        try:
            yield {"data": chunk({"role": "assistant", "content": ""}, None)}
            async for piece in iterate_in_threadpool(stream):
                pieces.append(piece)
                yield {"data": chunk({"content": piece}, None)}
            yield {"data": chunk({}, finish_reason("".join(pieces)))}
            yield {"data": "[DONE]"}
        except AppError as exc:  # after the headers went out (the model server went away): say so in the stream
            yield {"data": json.dumps({"error": {"message": exc.message, "type": "server_error"}})}
        finally:
            cancel.set()
            timeout.cancel()
            ticket.release()

    return EventSourceResponse(events())
