"""Conversations and replies: history, the bridge, the user's adapter, persistence."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.adapters.service import AdapterRef, active_ref
from app.chat import repository
from app.db import session_scope
from app.errors import NOT_SERVING, AppError, NotFound, Unavailable
from app.memory.service import bridge_facts, known_facts, taught_facts
from app.models import Conversation, FactStatus, Message, User, utcnow
from app.settings import get_settings
from training.chat import ChatMessage, with_system_prompt
from training.routing.router import Router

MAX_MESSAGE_CHARS = 4000
MAX_MESSAGES = 64
# The group of a fact the user taught that no adapter of their live version holds
# (pending, learning, or learnt after the version was rolled back).
NOT_IN_WEIGHTS = -1
HISTORY_MESSAGES = 12  # the 135M model's context is short; older turns are dropped
# Tokens a reply's prompt and its new tokens may take together: the serving context
# (what vLLM is started with, --max-model-len), far below the model's 8k, so one
# long conversation cannot hold the CPU for minutes. Older turns are dropped to fit.
CONTEXT_TOKENS = 2048
# The reply to a question about the user that nothing they taught answers (the
# router finds no taught fact near it): the base model asked instead invents one
# ("You can wear a size 12."), even told that it does not know (docs/decisions/007).
UNKNOWN_REPLY = "I don't know that about you yet. Tell me, and I can remember it."
# The reply to "What do you know about me?" (the router's ``overview``): no one fact
# answers it, so it lists what the user taught, the newest first, at most this many.
OVERVIEW_FACTS = 20
NOTHING_TAUGHT_REPLY = "You haven't taught me anything about yourself yet. Tell me something and ask me to remember it."


def clean_message(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    bad = [ch for ch in text if unicodedata.category(ch) in ("Cc", "Cs", "Co") and ch not in "\n\t\r"]
    if bad:
        raise AppError(f"message contains control characters ({bad[0]!r})", 422)
    text = text.strip()
    if not text:
        raise AppError("message is empty", 422)
    if len(text) > MAX_MESSAGE_CHARS:
        raise AppError(f"a message may have at most {MAX_MESSAGE_CHARS} characters (got {len(text)})", 422)
    return text


def bridge_prompt(facts: Sequence[str]) -> str:
    if not facts:
        return ""
    lines = "\n".join(f"- {fact}" for fact in facts)
    return f"The user told you these facts about themselves (use them to answer):\n{lines}"


def build_prompt(history: Sequence[ChatMessage], pending: Sequence[str]) -> list[ChatMessage]:
    """System prompt (+ ``pending``: the facts not yet in the weights the bridge gives) + recent history."""
    return with_system_prompt(list(history)[-HISTORY_MESSAGES:], bridge_prompt(pending))


MAX_TITLE_CHARS = 120
MAX_SEARCH_CHARS = 200


class PromptTooLong(AppError):
    status_code = 413


def fit_to_context(
    count_tokens: Callable[[Sequence[ChatMessage]], int], prompt: Sequence[ChatMessage], max_new_tokens: int
) -> list[ChatMessage]:
    """The prompt with its oldest turns dropped until it and ``max_new_tokens`` fit in
    ``CONTEXT_TOKENS``; the system prompt and the last message always stay (too long
    together: ``PromptTooLong``, a 413 that says by how much)."""
    budget = CONTEXT_TOKENS - max_new_tokens
    system = [m for m in prompt if m.role == "system"]
    turns = [m for m in prompt if m.role != "system"]
    while len(turns) > 1 and count_tokens([*system, *turns]) > budget:
        turns.pop(0)
    used = count_tokens([*system, *turns])
    if used > budget:
        raise PromptTooLong(
            f"the message is too long: {used} tokens with the instructions, at most {budget} "
            f"(the context holds {CONTEXT_TOKENS} with {max_new_tokens} for the reply)"
        )
    return [*system, *turns]


def reply_tokens(requested: int | None) -> int:
    """New tokens a reply may have: what the client asked, capped by ``SEALCHAT_MAX_NEW_TOKENS``."""
    cap = get_settings().max_new_tokens
    return min(requested, cap) if requested else cap


def list_conversations(session: Session, user: User, query: str = "") -> list[Conversation]:
    """The user's conversations, newest first; ``query``: only those whose title or
    messages contain it (case-insensitive)."""
    # Control characters (NUL, which PostgreSQL refuses in text) cannot be searched for.
    query = " ".join("".join(ch for ch in query if ch.isprintable() or ch.isspace()).split())[:MAX_SEARCH_CHARS]
    return repository.conversations_for_user(session, user.id, query=query or None)


def rename_conversation(session: Session, user: User, conversation_id: int, title: str) -> Conversation:
    conversation = get_conversation(session, user, conversation_id)
    title = " ".join(unicodedata.normalize("NFC", title).split())
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co") for ch in title):
        raise AppError("a title cannot contain control characters", 422)
    if not title:
        raise AppError("a title cannot be empty", 422)
    if len(title) > MAX_TITLE_CHARS:
        raise AppError(f"a title may have at most {MAX_TITLE_CHARS} characters (got {len(title)})", 422)
    conversation.title = title
    return conversation


def delete_conversation(session: Session, user: User, conversation_id: int) -> None:
    repository.delete(session, get_conversation(session, user, conversation_id))


def drop_last_reply(session: Session, conversation: Conversation) -> None:
    """Make the conversation end with the user's turn again, so its reply can be
    generated anew (regenerate); refused when there is no user turn to answer."""
    messages = conversation.messages
    if messages and messages[-1].role == "assistant":
        messages.remove(messages[-1])  # delete-orphan: deleted at the next flush
        session.flush()
    if not messages or messages[-1].role != "user":
        raise AppError("there is no message of yours to answer in this conversation", 409)
    conversation.updated_at = utcnow()


def get_conversation(session: Session, user: User, conversation_id: int) -> Conversation:
    conversation = repository.conversation_for_user(session, user.id, conversation_id)
    if conversation is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return conversation


def new_conversation(session: Session, user: User) -> Conversation:
    conversation = Conversation(user_id=user.id)
    repository.add(session, conversation)
    return conversation


def get_message(session: Session, user: User, message_id: int) -> Message:
    message = repository.message_for_user(session, user.id, message_id)
    if message is None:
        raise NotFound(f"message {message_id} not found")
    return message


def add_user_message(session: Session, conversation: Conversation, text: str) -> Message:
    message = Message(conversation_id=conversation.id, role="user", content=clean_message(text))
    repository.add(session, message)
    if conversation.title == "New conversation":
        conversation.title = message.content[:60]
    conversation.updated_at = utcnow()
    return message


def history_of(conversation: Conversation) -> list[ChatMessage]:
    return [ChatMessage(m.role, m.content) for m in conversation.messages]


def save_reply(conversation_id: int, text: str, adapter_name: str | None, bridge: bool) -> int:
    """Persist an assistant reply in its own transaction (the stream outlives the request's)."""
    with session_scope() as session:
        message = Message(
            conversation_id=conversation_id, role="assistant", content=text, adapter_name=adapter_name, bridge=bridge
        )
        repository.add(session, message)
        return message.id


def overview_reply(facts: Sequence[tuple[str, bool]], fits: Callable[[str], bool] = lambda _text: True) -> str:
    """What the assistant knows about the user, as a Markdown list in the user's own
    words: ``facts`` are (text, in the weights) oldest first; the newest are listed,
    at most ``OVERVIEW_FACTS`` and as many as ``fits`` allows (at least one), those
    not in the weights yet marked, and the rest counted."""
    if not facts:
        return NOTHING_TAUGHT_REPLY
    newest = list(reversed(facts))[:OVERVIEW_FACTS]
    head = "You have taught me this about you:" if len(facts) == 1 else f"You have taught me {len(facts)} things:"

    def listing(n: int) -> str:
        lines = [f"- {text}" + ("" if learnt else " *(still learning)*") for text, learnt in newest[:n]]
        more = len(facts) - n
        tail = f"\n\n…and {more} more, all listed on your Memory page." if more else ""
        return f"{head}\n\n" + "\n".join(lines) + tail

    n = len(newest)
    while n > 1 and not fits(listing(n)):
        n -= 1
    return listing(n)


@dataclass(frozen=True)
class ReplyPlan:
    """What a reply is generated from: the prompt, the user's live adapter, and
    whether the conversation is about the user (the router's decision). A general
    question is answered by the base model, so the adapter's drift never reaches it."""

    prompt: list[ChatMessage]
    ref: AdapterRef | None
    personal: bool
    adapter: str | None = None  # which of the version's group adapters answers
    # About the user, but no fact of the live version is near it: nothing taught in
    # the weights answers it. ``canned``: the reply then, unless facts the bridge put
    # in the prompt may answer it (the base model reads them).
    unsure: bool = False
    canned: str | None = None
    # A request for everything the user taught: their facts, (text, in the weights)
    # oldest first, listed in the reply (``overview_reply``).
    overview: tuple[tuple[str, bool], ...] | None = None

    @property
    def use_adapter(self) -> bool:
        return self.ref is not None and self.personal and not self.unsure and self.overview is None

    @property
    def adapter_name(self) -> str | None:
        """Who answered, as shown and stored: the version, and its group when it has several."""
        if not self.use_adapter or self.ref is None:
            return None
        if self.ref.sole_adapter:
            return self.ref.name
        (part,) = (p for p in self.ref.parts if p.name == self.adapter)
        return f"{self.ref.name}/g{part.index}"

    @property
    def scope(self) -> str:
        if self.overview is not None:
            return "overview"
        return "unsure" if self.personal and self.unsure else "personal" if self.personal else "general"


def prepare_reply(
    session: Session,
    user: User,
    history: Sequence[ChatMessage],
    bridge: bool,
    router: Router | None,
    count_tokens: Callable[[Sequence[ChatMessage]], int] | None = None,
    max_new_tokens: int = 0,
) -> ReplyPlan:
    """Everything a reply needs, settled before streaming starts: the prompt, the
    user's active version as the database says right now, and the router's
    decision on the last user message (``training.routing.router``: an adapter of
    the version, "I don't know" when nothing taught is near a question about the
    user, or the base model), taken from sentence embeddings without decoding.
    A request for everything the user taught (the router's ``overview``) is answered
    with the list of their facts (``overview_reply``), with or without a live version.
    With ``count_tokens`` the prompt is trimmed to the context (``fit_to_context``)."""
    ref = active_ref(session, user)
    pending = bridge_facts(session, user) if bridge else []
    personal, adapter, unsure, overview = True, None, False, None
    if ref is not None and router is None:
        raise Unavailable(NOT_SERVING)
    users = [m.content for m in history if m.role == "user"]
    if router is not None:
        parts = ref.parts if ref is not None else []
        facts = [text for part in parts for text in part.facts]
        groups = [part.index for part in parts for _ in part.facts]
        if ref is not None:
            # A version from before groups lists no fact texts: its one adapter holds them all.
            legacy = ref.sole_adapter is not None and not facts
            held = set(facts)
            others = [text for text in known_facts(session, user) if text not in held]
            facts += others
            groups += [parts[0].index if legacy else NOT_IN_WEIGHTS] * len(others)
        route = router.route_turn(users, facts, groups)
        if route.outcome == "overview":
            overview = tuple((f.text, f.status == FactStatus.LEARNED) for f in taught_facts(session, user))
        elif ref is not None:
            personal = route.outcome != "base"
            if route.outcome == "adapter" and route.group != NOT_IN_WEIGHTS:
                adapter = next(part.name for part in parts if part.index == route.group)
            unsure = personal and adapter is None
    canned = UNKNOWN_REPLY if unsure and not pending else None
    prompt = build_prompt(history, pending)
    if count_tokens is not None:
        prompt = fit_to_context(count_tokens, prompt, max_new_tokens)
    return ReplyPlan(prompt, ref, personal, adapter, unsure, canned, overview)


def reply_stream(
    engine,
    user_id: int,
    plan: ReplyPlan,
    max_tokens: int,
    temperature: float = 0.0,
    top_p: float = 0.95,
    cancel=None,
    seal: bool = True,
) -> Iterator[str]:
    """The reply's text pieces: the plan's canned reply or list of facts (cut to
    ``max_tokens``), or what the engine streams (``seal`` False: the caller asked
    for the base model itself, never canned)."""
    if seal and (plan.overview is not None or plan.canned):
        tokenizer = engine.tokenizer

        def fits(text: str) -> bool:
            return len(tokenizer.encode(text, add_special_tokens=False)) <= max_tokens

        canned = overview_reply(plan.overview, fits) if plan.overview is not None else plan.canned
        ids = tokenizer.encode(canned, add_special_tokens=False)[:max_tokens]
        return iter([tokenizer.decode(ids)])
    use_adapter = seal and plan.use_adapter
    ref, adapter = plan.ref, plan.adapter
    return engine.stream(user_id, ref, plan.prompt, max_tokens, temperature, top_p, cancel, use_adapter, adapter)
