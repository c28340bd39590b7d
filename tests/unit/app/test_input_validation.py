"""Bad input gets a clear error: facts, messages, API request bodies, settings."""

import pytest
from pydantic import ValidationError

from app.chat.service import clean_message
from app.errors import AppError
from app.memory.service import clean_fact_text
from app.openai_api.schemas import ChatCompletionRequest
from app.settings import Settings


def test_fact_text_is_normalised():
    assert clean_fact_text("  My  cat\n is Tofu. ") == "My cat is Tofu."


@pytest.mark.parametrize("bad", ["", "  ", "ab", "x" * 1001, "nul\x00byte", "bell\x07"])
def test_bad_fact_text_is_refused(bad):
    with pytest.raises(AppError) as err:
        clean_fact_text(bad)
    assert err.value.status_code == 422


def test_bad_messages_are_refused():
    with pytest.raises(AppError):
        clean_message("   ")
    with pytest.raises(AppError):
        clean_message("y" * 4001)
    assert clean_message(" hi ") == "hi"


def test_chat_completion_request_validation():
    ok = ChatCompletionRequest(messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    assert ok.messages[0].content == "hi" and ok.bridge is True and ok.model == "seal"
    with pytest.raises(ValidationError, match="unknown model"):
        ChatCompletionRequest(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(ValidationError):
        ChatCompletionRequest(messages=[])
    with pytest.raises(ValidationError):
        ChatCompletionRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=100000)


def test_production_refuses_a_missing_secret(monkeypatch):
    monkeypatch.setenv("SEALCHAT_ENV", "production")
    monkeypatch.delenv("SEALCHAT_SECRET_KEY", raising=False)
    with pytest.raises(ValidationError, match="SEALCHAT_SECRET_KEY"):
        Settings(_env_file=None)


def test_embedded_defaults(tmp_path, monkeypatch):
    for var in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(_env_file=None, SEALCHAT_DATA_DIR=tmp_path)
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path}/sealchat.db"
    assert settings.celery_broker_url == f"redis+socket://{tmp_path}/redis.sock"
    pg = Settings(_env_file=None, DATABASE_URL="postgresql://u@h/db")
    assert pg.sqlalchemy_url == "postgresql+psycopg://u@h/db"


def test_a_long_conversation_is_trimmed_oldest_first_to_the_context():
    from app.chat.service import CONTEXT_TOKENS, PromptTooLong, fit_to_context
    from training.chat import ChatMessage

    def words(messages):  # one token per word, for the test
        return sum(len(m.content.split()) for m in messages)

    system = ChatMessage("system", "be kind")
    old, mid, last = (ChatMessage("user", "w " * n) for n in (1500, 300, 100))
    fitted = fit_to_context(words, [system, old, mid, last], max_new_tokens=200)
    assert fitted == [system, mid, last], "the oldest turn went; the instructions and the newest stayed"
    assert words(fitted) <= CONTEXT_TOKENS - 200
    with pytest.raises(PromptTooLong) as too_long:
        fit_to_context(words, [system, ChatMessage("user", "w " * 5000)], max_new_tokens=200)
    assert too_long.value.status_code == 413 and "5002 tokens" in too_long.value.message


def test_max_tokens_is_capped_by_the_server(monkeypatch):
    from app.chat.service import reply_tokens
    from app.settings import get_settings

    cap = get_settings().max_new_tokens
    assert reply_tokens(None) == cap
    assert reply_tokens(2048) == cap
    assert reply_tokens(5) == 5
