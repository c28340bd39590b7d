"""Chat: conversations, messages, prompt building with the bridge, streamed replies."""
