"""Request and response shapes of the OpenAI chat completions API (the subset we serve)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.chat.service import MAX_MESSAGE_CHARS, MAX_MESSAGES

MODELS = {"seal": "the base model with your own LoRA adapter (what you taught it)", "base": "the plain base model"}


class ContentPart(BaseModel):
    type: Literal["text"]
    text: str = Field(max_length=MAX_MESSAGE_CHARS)


class InputMessage(BaseModel):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[ContentPart] = Field(description="text, or a list of text parts")

    @field_validator("content")
    @classmethod
    def _flatten(cls, value: str | list[ContentPart]) -> str:
        text = value if isinstance(value, str) else "".join(part.text for part in value)
        if any("\ud800" <= ch <= "\udfff" for ch in text):
            raise ValueError("content contains a lone surrogate (\\ud800-\\udfff), which is not text")
        if "\x00" in text:
            raise ValueError("content contains a NUL character")
        if len(text) > MAX_MESSAGE_CHARS:
            raise ValueError(f"a message may have at most {MAX_MESSAGE_CHARS} characters (got {len(text)})")
        return text


class ChatCompletionRequest(BaseModel):
    # Unknown OpenAI fields (n, user, seed, ...) are accepted and ignored, as clients send them.
    model_config = ConfigDict(extra="ignore")

    model: str = Field("seal", description="'seal' (your adapter) or 'base'", json_schema_extra={"enum": list(MODELS)})
    messages: list[InputMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=2048)
    max_completion_tokens: int | None = Field(None, ge=1, le=2048)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    bridge: bool = Field(
        True, description="give facts not yet learnt into the weights to the model in its system prompt"
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(f"unknown model {value!r}; available: {', '.join(MODELS)}")
        return value


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    description: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class OutputMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: OutputMessage
    finish_reason: Literal["stop", "length"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = Field(None, description="the adapter version that answered, if any")
